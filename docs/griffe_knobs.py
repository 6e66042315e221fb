"""Griffe extension for the API reference: a guidance method's knobs read as their defaults.

A method declares its knobs as dataclass fields, ``rho: float = knob(1.0, "the mean-guidance strength …")``
(``stylediff.diffusion.methods.base.knob``). Griffe reads the source, so the class's merged signature
showed each default as that whole call, help text and ``choices=`` included: a signature of twenty
long lines. This extension rewrites such an attribute's value to the call's first argument (the
default), before griffe's dataclass extension builds ``__init__`` from the fields, so the signature reads
``rho: float = 1.0``; the help text becomes the attribute's docstring (listed under the class's
attributes), unless the field has a docstring of its own.
"""

from __future__ import annotations

import ast
from typing import Any

import griffe

KNOB = "knob"  # the field factory of stylediff/diffusion/methods/base.py


class KnobDefaults(griffe.Extension):
    """``x: T = knob(default, help, …)`` → the default as the value, the help as the docstring."""

    def on_attribute_instance(
        self, *, node: ast.AST | griffe.ObjectNode, attr: griffe.Attribute, **kwargs: Any
    ) -> None:
        """Rewrite one attribute's value if it is a ``knob(…)`` call (see the module docstring)."""
        value = attr.value
        if not isinstance(value, griffe.ExprCall) or str(value.function) != KNOB or not value.arguments:
            return
        default = value.arguments[0]
        if isinstance(default, griffe.ExprKeyword):  # knob(default=…, help=…): left as written
            return
        attr.value = default
        if attr.docstring is None and isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Call):
            args = node.value.args
            try:  # the help: a string literal (adjacent literals are one constant in the AST)
                text = ast.literal_eval(args[1]) if len(args) > 1 else None
            except ValueError:
                text = None
            if isinstance(text, str):
                attr.docstring = griffe.Docstring(text, parent=attr)
