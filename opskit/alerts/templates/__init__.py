"""jinja2 templates of the rendered files (package data)."""
