"""One thin module per command group: options -> spec -> core -> render -> exit code."""
