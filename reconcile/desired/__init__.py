"""Files → the desired model: finding and parsing YAML files, locating every value, YAML safety checks, validation."""
