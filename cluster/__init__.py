"""Running citystream on a Ray cluster: submission, placement, manifests (issue: cluster)."""
