"""image-updater: a GitOps image updater compatible with Argo CD Image Updater's annotations."""

__version__ = "0.1.0"
