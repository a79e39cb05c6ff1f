"""The counter engine: sequence definitions, formats, periods and allocation."""
