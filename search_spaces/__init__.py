"""nasforge.search_spaces: the space API and the spaces (network builders and their ops).

Imports torch and timm only, never the platform or the tasks. See `space.py` for the API and
`registry.py` for look-up by name.
"""
from .registry import backbone_spaces, create_composite, create_space, get_space_class, list_spaces, register_space
from .space import (
    Categorical,
    CompositeSpace,
    Decision,
    Dim,
    Float,
    Int,
    Sample,
    SampleValidationError,
    Space,
)

__all__ = [
    "Categorical", "CompositeSpace", "Decision", "Dim", "Float", "Int", "Sample",
    "SampleValidationError", "Space", "create_composite", "create_space", "get_space_class",
    "backbone_spaces", "list_spaces", "register_space",
]
