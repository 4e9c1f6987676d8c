"""Customers as a whole: erasing one with everything stored about them."""
