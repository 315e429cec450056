"""labhelpers: thin helpers for the JSC labs."""
