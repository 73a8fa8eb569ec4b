"""`ns shard`'s input side: image collections (folders, lists, tars) and the pipeline that shards them."""
