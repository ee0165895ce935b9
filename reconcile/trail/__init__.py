"""The audit trail, read: records checked and matched to keys, runs of this tool, overwritten changes. Pure."""
