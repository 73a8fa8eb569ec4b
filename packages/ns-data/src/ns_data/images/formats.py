"""The image formats a shard set stores, and the extensions ns reads image members under."""

STORED_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
"""PIL format → the extension a shard set stores it under; formats kept as they are. MPO is a JPEG
followed by more pictures (phone cameras write it): every decoder reads its first picture."""
STORED_EXTS = ("jpg", "png", "webp")
"""The image member extensions of our shard sets."""
READ_EXTS = ("jpg", "jpeg", "png", "webp")
"""The image member extensions read from WebDataset tars made elsewhere."""
