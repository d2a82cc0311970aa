"""The filesystem's nodes: one class per kind of path, looked up from the root."""

from jhfs.nodes.base import XATTR_NAMESPACE, Attrs, Handle, Node
from jhfs.nodes.context import MountContext
from jhfs.nodes.tree import RootDir, resolve

__all__ = ["XATTR_NAMESPACE", "Attrs", "Handle", "MountContext", "Node", "RootDir", "resolve"]
