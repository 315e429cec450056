"""labhelpers: thin helpers for the JSC labs.

Importing the package pins the numeric environment (``labhelpers.numerics``) before torch computes
anything, so that results do not depend on the x86 vendor; a value the user exported wins.
"""
from .numerics import pin_environment as _pin_environment

_pin_environment()
