"""Read a model's stored file name and path without leaving a reference cycle behind.

Reading a FileField (`image.file`) makes a FieldFile that keeps the instance
(`FieldFile.instance`) and caches it in the instance's `__dict__`: instance and
FieldFile are then a reference cycle that only the cyclic garbage collector
frees (discussed upstream as a `weak=True` option for FileField:
https://forum.djangoproject.com/t/use-a-weak-reference-for-file-field-memory-optimization/16959).
A view that only needs where the file is puts the plain name back instead.
"""

from __future__ import annotations

from django.db.models import Model


def stored_file(instance: Model, field_name: str) -> tuple[str, str]:
    """Return the (name, path) of `instance`'s file field; ("", "") when it has no file.

    The instance is left as loaded from the database (its field holds the name),
    so a later read makes a fresh FieldFile as usual.
    """
    field_file = getattr(instance, field_name)
    name = field_file.name or ""
    try:
        return name, field_file.path if name else ""
    finally:
        instance.__dict__[field_file.field.attname] = field_file.name
