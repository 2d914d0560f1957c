"""What Flux's source-controller hands over: the repository's files, read once, bounded and contained, each
object traced back to the file it comes from (provenance)."""
