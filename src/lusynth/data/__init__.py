"""Data: the frame store, readers, preprocessing, splits, pseudonymisation, the phantom, ingest."""
