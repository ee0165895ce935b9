"""A plan → changes on the server: bounded concurrency, the shared rate limiter, retries, the journal, progress."""
