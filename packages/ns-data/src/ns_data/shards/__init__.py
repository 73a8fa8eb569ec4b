"""The shard-set format: WebDataset tars, the DALI index beside each, the manifest; write and read."""
