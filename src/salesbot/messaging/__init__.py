"""Messaging providers: one adapter per vendor (Wazzup, Twilio, console) behind `base.MessagingProvider`."""
