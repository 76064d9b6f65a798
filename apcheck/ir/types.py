"""Types of the apcheck language and how their values are encoded.

Encoding (the explorer's state is tuples of small integers):
bool 0/1; enum member index; sort element 0..n-1 (null = -1); error code as a
non-positive int; set or relation over sorts S1..Sk: a bitmask over the
row-major product; map: a tuple of values indexed row-major by its keys;
tuple of elements: its row-major flat index.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Type:
    def __str__(self) -> str:  # pragma: no cover - overridden
        return self.__class__.__name__


@dataclass(frozen=True)
class BoolT(Type):
    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True)
class IntT(Type):
    def __str__(self) -> str:
        return "int"


@dataclass(frozen=True)
class ErrT(Type):
    def __str__(self) -> str:
        return "error code"


@dataclass(frozen=True)
class NullT(Type):
    def __str__(self) -> str:
        return "null"


@dataclass(frozen=True)
class EnumT(Type):
    name: str
    members: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ElemT(Type):
    sort: str
    optional: bool = False

    def __str__(self) -> str:
        return self.sort + ("?" if self.optional else "")


@dataclass(frozen=True)
class TupleT(Type):
    sorts: tuple[str, ...]

    def __str__(self) -> str:
        return "(" + ", ".join(self.sorts) + ")"


@dataclass(frozen=True)
class SetT(Type):
    sorts: tuple[str, ...] | None  # None: the empty set literal, any set type

    def __str__(self) -> str:
        if self.sorts is None:
            return "empty set"
        if len(self.sorts) == 1:
            return f"set<{self.sorts[0]}>"
        return "rel<" + ", ".join(self.sorts) + ">"


@dataclass(frozen=True)
class MapT(Type):
    keys: tuple[str, ...]
    value: Type

    def __str__(self) -> str:
        return "map<" + ", ".join(self.keys) + f" -> {self.value}>"


BOOL, INT, ERR, NULL = BoolT(), IntT(), ErrT(), NullT()


def assignable(target: Type, value: Type) -> bool:
    """Can a value of type `value` be stored where `target` is expected?"""
    if target == value:
        return True
    if isinstance(target, SetT) and isinstance(value, SetT):
        return value.sorts is None or target.sorts is None
    if isinstance(target, ElemT) and target.optional:
        return value == NULL or (isinstance(value, ElemT) and value.sort == target.sort)
    if isinstance(target, ErrT):
        return isinstance(value, IntT)
    return False


def comparable(a: Type, b: Type) -> bool:
    if assignable(a, b) or assignable(b, a):
        return True
    return isinstance(a, ElemT) and isinstance(b, ElemT) and a.sort == b.sort


ERRNOS = {
    "EPERM": 1, "ENOENT": 2, "EINTR": 4, "EIO": 5, "ENXIO": 6, "EAGAIN": 11, "ENOMEM": 12,
    "EFAULT": 14, "EBUSY": 16, "EEXIST": 17, "ENODEV": 19, "EINVAL": 22, "ENOSPC": 28,
    "EOPNOTSUPP": 95, "EADDRINUSE": 98, "EADDRNOTAVAIL": 99, "ETIMEDOUT": 110,
    "ERESTARTSYS": 512, "ENOTSUPP": 524,
}
ERRNAMES = {v: k for k, v in ERRNOS.items()}


def errno_text(code: int) -> str:
    return "0" if code == 0 else "-" + ERRNAMES.get(-code, str(-code))
