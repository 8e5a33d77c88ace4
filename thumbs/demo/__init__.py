"""`thumbs demo`: generated stand-in images (images.py), the origin that serves them
(origin.py), and the whole product seeded with them on one port (run.py)."""
