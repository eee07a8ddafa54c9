"""One exception tree for the whole product.

Adapters translate library errors (httpx, GitPython, ruamel.yaml) into these at the boundary, so the
core and the CLI only ever see this tree::

    ImageUpdaterError                 context: app, image (both optional)
    ├── ConfigError                   a config key is wrong (key, line)
    ├── AnnotationError               an Application annotation is wrong (annotation)
    ├── ImageReferenceError           a malformed image reference
    ├── ConstraintError               an invalid semver constraint or tag filter
    ├── SelectionError                no tag could be chosen, with the reasons
    ├── RegistryError                 the registry answered badly (status, codes, redacted URL)
    │   ├── RegistryAuthError         401/403, or the token endpoint failed
    │   ├── RegistryNotFoundError     404 / NAME_UNKNOWN / MANIFEST_UNKNOWN
    │   └── RegistryUnavailableError  timeouts, connection errors, 5xx, 429 after retries
    ├── EditError                     a target file does not parse or has the wrong shape
    ├── WriteBackError                a write-back was refused (path outside the repo, ...)
    ├── GitError                      a Git operation failed
    │   └── PushRejectedError         the remote refused our push
    └── WebhookError                  a webhook request was refused (status: 400, 401 or 413)

Every error renders as one line naming the Application, the image and the cause.
"""

from __future__ import annotations

from collections.abc import Sequence


class ImageUpdaterError(Exception):
    """Base of every error the product raises on purpose."""

    def __init__(self, message: str, *, app: str | None = None, image: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.app = app
        self.image = image

    def with_context(self, *, app: str | None = None, image: str | None = None) -> ImageUpdaterError:
        """This error with the Application and image filled in where they are not set yet.

        Returns ``self`` when nothing is filled in, else a copy: one error shared by several
        Applications (a clone that failed for all of them) must name each of them, not the first.
        """
        fill_app = self.app is None and app is not None
        fill_image = self.image is None and image is not None
        if not (fill_app or fill_image):
            return self
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.args = self.args
        copy.__cause__, copy.__context__ = self.__cause__, self.__context__
        copy.__suppress_context__ = self.__suppress_context__
        copy.__traceback__ = self.__traceback__
        if fill_app:
            copy.app = app
        if fill_image:
            copy.image = image
        return copy

    def __str__(self) -> str:
        parts = []
        if self.app:
            parts.append(f"application {self.app}")
        if self.image:
            parts.append(f"image {self.image}")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class ConfigError(ImageUpdaterError):
    """The configuration is wrong; names the key and, where known, the line."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None) -> None:
        where = ""
        if key:
            where = f"config key {key!r}"
            if line is not None:
                where += f" (line {line})"
            where += ": "
        super().__init__(where + message)
        self.key = key
        self.line = line


class AnnotationError(ImageUpdaterError):
    """An Application annotation is invalid; names the annotation."""

    def __init__(self, message: str, *, annotation: str, app: str | None = None, image: str | None = None) -> None:
        super().__init__(f"annotation {annotation}: {message}", app=app, image=image)
        self.annotation = annotation


class ImageReferenceError(ImageUpdaterError):
    """A malformed image reference."""


class ConstraintError(ImageUpdaterError):
    """An invalid version constraint, regular expression or tag filter."""


class SelectionError(ImageUpdaterError):
    """No tag could be chosen; the message says why."""


class RegistryError(ImageUpdaterError):
    """The registry answered with an error, or could not be asked.

    ``url`` must already be redacted (no credentials, no query tokens); ``codes`` are the registry's
    error codes from the body (``UNAUTHORIZED``, ``NAME_UNKNOWN``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        registry: str | None = None,
        status: int | None = None,
        codes: Sequence[str] = (),
        url: str | None = None,
        app: str | None = None,
        image: str | None = None,
    ) -> None:
        details = []
        if registry:
            details.append(f"registry {registry}")
        if status is not None:
            details.append(f"HTTP {status}")
        if codes:
            details.append("codes " + ",".join(codes))
        text = message + (f" ({'; '.join(details)})" if details else "")
        super().__init__(text, app=app, image=image)
        self.registry = registry
        self.status = status
        self.codes = tuple(codes)
        self.url = url


class RegistryAuthError(RegistryError):
    """Authentication or authorisation failed (401/403, or the token endpoint failed)."""


class RegistryNotFoundError(RegistryError):
    """The repository, tag or manifest does not exist."""


class RegistryUnavailableError(RegistryError):
    """A temporary failure that outlived the retries: timeout, connection error, 5xx, 429."""


class EditError(ImageUpdaterError):
    """A target file cannot be edited: it does not parse, or its shape is not the expected one."""

    def __init__(
        self, message: str, *, path: str | None = None, app: str | None = None, image: str | None = None
    ) -> None:
        super().__init__(f"{path}: {message}" if path else message, app=app, image=image)
        self.path = path


class WriteBackError(ImageUpdaterError):
    """A write-back was refused or could not be prepared."""


class GitError(ImageUpdaterError):
    """A Git operation failed."""


class PushRejectedError(GitError):
    """The remote refused our push (non-fast-forward or protected branch)."""


class WebhookError(ImageUpdaterError):
    """A registry webhook request was refused; ``status`` is the HTTP answer (400, 401 or 413).

    ``source`` is the webhook source (``distribution``, ``docker.io``, ...) when it is known.
    """

    def __init__(self, message: str, *, status: int = 400, source: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.source = source
