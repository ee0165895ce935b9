"""The JSON Schemas (desired files, update requests, the report): where they are, validators, and the generator."""
