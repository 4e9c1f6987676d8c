"""Inventory sync: stock levels and prices from an external system (a file export or Zoho Inventory).

`base.py` holds the `InventorySource` interface and the errors, `file_source.py` and `zoho.py` the two
sources, `service.py` applies what a source reports to the catalog (never touching embeddings: stock and
price are not part of the embedded text) and picks the source from the settings.
"""
