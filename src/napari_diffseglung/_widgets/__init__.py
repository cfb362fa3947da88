"""Dock widgets of the plugin. Each is thin: it calls diffseglung_core and shows the result."""
