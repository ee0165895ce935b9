"""The use cases: one module per command (validate, plan, apply, rotate, export, audit), each typed
options in and a `Result` out, running the steps of one run in order (octoDNS' manager). The light
ones (`validate`, `load`, `options`, `outputs`, `result`, `clock`) serve the offline commands; the
others hold the network side."""
