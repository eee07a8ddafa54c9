"""Tag texts as the editors read and write them.

A *tag text* is what :class:`~image_updater.model.changes.Change` records: ``1.0.0``, or
``1.0.0@sha256:...`` when a digest pins it (the ``digest`` strategy writes that form), or ``@sha256:...``
for a reference pinned by digest alone. A reference with neither has no tag text (``None``).
"""

from __future__ import annotations

from image_updater.errors import EditError, ImageReferenceError
from image_updater.model.ref import ImageName, parse_image_ref


def tag_text(tag: str | None, digest: str | None) -> str | None:
    """The tag text of a tag and a digest, either of which may be missing."""
    if digest:
        return f"{tag or ''}@{digest}"
    return tag or None


def split_new_tag(new_tag: str) -> tuple[str, str | None]:
    """Split a new tag text into its tag and digest, validating both; an invalid one is an
    :class:`EditError` (nothing is written)."""
    try:
        ref = parse_image_ref(f"example.invalid/image:{new_tag}")
    except ImageReferenceError as e:
        raise EditError(f"cannot write tag {new_tag!r}: {e.message}") from None
    assert ref.tag is not None
    return ref.tag, ref.digest


def mentions(text: str, name: str | ImageName) -> bool:
    """Whether ``text`` can mention the image at all: its last path component occurs in it.

    The editors skip parsing a file that does not (a name written with YAML escapes is not found).
    """
    repository = name.repository if isinstance(name, ImageName) else name
    return repository.rsplit("/", 1)[-1] in text
