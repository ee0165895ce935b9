"""Issued secrets: the opaque `Secret` the client wraps every cleartext in, and the sinks the operator names."""
