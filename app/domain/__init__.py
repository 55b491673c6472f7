"""The pure domain: rules and data with no web framework and no database in them."""
