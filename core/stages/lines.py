"""The code panel's lines, read from a stage's forward: the chapter's maths is written once.

``lines(forward, given, values)`` reads the forward's source and returns ``(name, line)`` for
each tensor it records, ``name = <expression>``, in the forward's order:

- each call to the chapter's ``ops`` (``ops.scores(q, k)``: core/stages/ops.py's plain ``Ops``)
  and to a one-line helper (a ``return``; ``project``, a nested ``split``) is replaced by the
  helper's own expression with its arguments written in (``queries @ keys.transpose(-2, -1)``),
  so the panel shows exactly what the plain ``Ops`` runs; a helper marked ``shown_as_first``
  (a numerical guard around the chapter's expression) shows its first argument;
- a called function that records (``attention_weights``, ``ops.later(rest)``) gives its own lines;
- another assignment that does not touch ``ops`` (``b, num_tokens, _ = batch.shape``) is an
  untagged line;
- what the forward is given rather than makes (the weights, the mask, the dropout draw) is the
  stage's to write: ``given[name]`` is written where ``name`` is recorded;
- ``values`` maps an expression to the text the panel writes for it (``qkv["query"].W`` ->
  ``W_query``), or to None: absent (no bias), so ``x @ W if b is None else x @ W + b`` is
  folded to the branch the configuration takes; so is ``form == "split"`` once ``form`` is
  known, and an ``if`` statement whose test is known is read as the branch it takes (a return
  there ends the function); a keyword argument that is absent is left out (``device=None``).
  ``definition`` writes an ``if`` it cannot decide as it stands.

Names resolve as the forward runs them: in the function's module, and nested functions in the
callers' bodies. The ops object is the one called ``ops``; ``record`` is ``ops.record``.
"""
from __future__ import annotations

import ast
import copy
import functools
import inspect
import io
import textwrap
import tokenize
from typing import Callable

from core.stages.ops import Ops

Line = tuple[str | None, str]


def lines(forward: Callable, given: dict[str, list[Line]] | None = None,
          values: dict[str, str | None] | None = None) -> list[Line]:
    """``forward``'s recorded lines, tagged with the names it records (see the module's doc)."""
    return list(_read(forward, tuple((k, tuple(v)) for k, v in (given or {}).items()), tuple((values or {}).items())))


def definition(fn: Callable, values: dict[str, str | None] | None = None) -> list[Line]:
    """``fn`` written out as a ``def`` (untagged lines): its signature, then its body read as
    ``lines`` reads a forward, its ``return`` included; for a helper the forward calls."""
    fd = copy.deepcopy(_source(fn))
    for a in fd.args.args:
        a.annotation = None                      # the parameters and their defaults, as they run
    body = _read(fn, (), tuple((values or {}).items()), block=True)
    return [(None, f"def {fd.name}({ast.unparse(fd.args)}):")] + [(None, "    " + l) for _, l in body]


@functools.lru_cache(maxsize=256)            # the panel asks on every refresh; reading costs milliseconds
def _read(fn: Callable, given: tuple, values: tuple, block: bool = False) -> tuple[Line, ...]:
    known = {ast.dump(_expr(k)): (None if v is None else _expr(v)) for k, v in values}
    reader = _Reader({k: list(v) for k, v in given}, known, block)
    reader.body(_body(_source(fn)), {}, [({}, fn.__globals__)])
    return tuple(reader.out)


def _target(node: ast.expr) -> str:
    """An assignment's target or a returned value: a tuple without brackets (``b, T, _``)."""
    return ", ".join(map(ast.unparse, node.elts)) if isinstance(node, ast.Tuple) and len(node.elts) > 1 \
        else ast.unparse(node)


def _expr(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


@functools.cache
def _source(fn: Callable) -> ast.FunctionDef:
    """``fn``'s definition; each simple statement carries the shape comment (``# (b, h, T, hd)``) that ends its last
    line or stands on the line above (``_comment``), which the panel keeps."""
    text = textwrap.dedent(inspect.getsource(fn))
    tokens = [tok for tok in tokenize.generate_tokens(io.StringIO(text).readline)
              if tok.type == tokenize.COMMENT and tok.string.startswith("# (")]       # shapes only
    comments = {tok.start[0]: tok.string for tok in tokens}
    alone = {tok.start[0]: tok.string for tok in tokens if not tok.line[:tok.start[1]].strip()}
    fd = ast.parse(text).body[0]
    for node in ast.walk(fd):
        if isinstance(node, (ast.Assign, ast.Expr, ast.Return)):   # its own line's, else one standing above
            node._comment = comments.get(node.end_lineno) or alone.get(node.lineno - 1)
    return fd


def _is_record(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "record")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "record"))


def _uses_ops(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id in ("ops", "record") for n in ast.walk(node))


def _body(fd: ast.FunctionDef) -> list[ast.stmt]:
    """The statements, less the docstring."""
    b = fd.body
    if b and isinstance(b[0], ast.Expr) and isinstance(b[0].value, ast.Constant) and isinstance(b[0].value.value, str):
        return b[1:]
    return b


class _Bind(ast.NodeTransformer):
    """A callee's parameters replaced by the caller's argument expressions."""

    def __init__(self, bind: dict[str, ast.expr]):
        self.bind = bind

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if isinstance(node.ctx, ast.Load) and node.id in self.bind:
            return copy.deepcopy(self.bind[node.id])
        return node


class _Fold(ast.NodeTransformer):
    """``values`` written in; ``v is None`` and ``a if test else b`` folded where the test is known."""

    def __init__(self, known: dict[str, ast.expr | None]):
        self.known = known

    def visit(self, node):
        key = ast.dump(node) if isinstance(node, ast.expr) else None
        if key in self.known:
            v = self.known[key]
            if v is None:
                absent = ast.Constant(None)
                absent.absent = True
                return absent
            return copy.deepcopy(v)
        return super().visit(node)

    def visit_Call(self, node: ast.Call):
        node = self.generic_visit(node)
        node.keywords = [k for k in node.keywords if not getattr(k.value, "absent", False)]
        return node

    def visit_Compare(self, node: ast.Compare):
        if (len(node.ops) == 1 and isinstance(node.ops[0], (ast.Is, ast.IsNot))
                and isinstance(node.comparators[0], ast.Constant) and node.comparators[0].value is None):
            key = ast.dump(node.left)
            if key in self.known or isinstance(node.left, ast.Constant):
                none = self.known[key] is None if key in self.known else node.left.value is None
                return ast.Constant(none if isinstance(node.ops[0], ast.Is) else not none)
        node = self.generic_visit(node)
        if (len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.NotEq))
                and isinstance(node.left, ast.Constant) and isinstance(node.comparators[0], ast.Constant)):
            equal = node.left.value == node.comparators[0].value           # form == "split", form known
            return ast.Constant(equal if isinstance(node.ops[0], ast.Eq) else not equal)
        return node

    def visit_IfExp(self, node: ast.IfExp):
        node = self.generic_visit(node)
        if isinstance(node.test, ast.Constant):
            return node.body if node.test.value else node.orelse
        return node


# a scope: the nested functions a body defines (name -> (def, the bind and the module globals it
# was defined under)), and the module globals the body's names resolve in
Scope = tuple[dict[str, tuple[ast.FunctionDef, dict, dict]], dict]


class _Reader:
    def __init__(self, given: dict[str, list[Line]], known: dict[str, ast.expr | None], block: bool = False):
        self.given = given
        self.known = known
        self.block = block                     # a function's body written out: its return too
        self.out: list[Line] = []

    # -- resolving a call ------------------------------------------------------------------
    def callee(self, call: ast.Call, scopes: list[Scope]):
        """(statements, bind, globals) of the function ``call`` runs, or None (torch, a method)."""
        f = call.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "ops":
            fn = getattr(Ops, f.attr, None)
            if not callable(fn):
                return None
            return self._bound(fn, call, self_arg=True)
        if not isinstance(f, ast.Name):
            return None
        for defs, _glb in reversed(scopes):
            if f.id in defs:
                fd, outer, glb = defs[f.id]
                params = [a.arg for a in fd.args.args]
                bind = {**outer, **dict(zip(params, call.args)), **{k.arg: k.value for k in call.keywords}}
                return _body(fd), bind, glb
        glb = scopes[-1][1]
        fn = glb.get(f.id)
        if inspect.isfunction(fn) and (fn.__module__.startswith("core.stages") or fn.__module__ == glb.get("__name__")):
            return self._bound(fn, call)
        return None

    def _bound(self, fn: Callable, call: ast.Call, self_arg: bool = False):
        sig = inspect.signature(fn)
        args = ([None] if self_arg else []) + list(call.args)
        ba = sig.bind(*args, **{k.arg: k.value for k in call.keywords})
        ba.apply_defaults()
        bind = {k: (v if isinstance(v, ast.AST) else ast.Constant(v)) for k, v in ba.arguments.items()}
        if getattr(fn, "shown_as_first", False):
            return "first", bind[next(iter(sig.parameters))], None
        return _body(_source(fn)), bind, fn.__globals__

    # -- expressions -----------------------------------------------------------------------
    def expr(self, node: ast.expr, scopes: list[Scope]) -> ast.expr:
        """``node`` with each inlinable call replaced by its function's expression."""
        reader = self

        class Inline(ast.NodeTransformer):
            def visit_Call(self, call: ast.Call):
                call = self.generic_visit(call)            # the arguments first
                found = reader.callee(call, scopes)
                if found is None:
                    return call
                stmts, bind, glb = found
                if stmts == "first":
                    return bind
                if len(stmts) == 1 and isinstance(stmts[0], ast.Return) and not _is_record(stmts[0].value):
                    body = _Bind(bind).visit(copy.deepcopy(stmts[0].value))
                    return reader.expr(body, scopes + [({}, glb)])
                return call
        return Inline().visit(copy.deepcopy(node))

    def line(self, name: str | None, target: str, value: ast.expr, stmt: ast.stmt | None = None) -> None:
        comment = getattr(stmt, "_comment", None)
        self.out.append((name, f"{target} = {_target(_Fold(self.known).visit(value))}"
                               + (f"  {comment}" if comment else "")))

    # -- statements ------------------------------------------------------------------------
    def body(self, stmts: list[ast.stmt], bind: dict, scopes: list[Scope]) -> bool:
        """Read ``stmts``; True once a ``return`` is read (what follows it does not run)."""
        scopes = scopes[:-1] + [({**scopes[-1][0]}, scopes[-1][1])]
        for stmt in stmts:
            if isinstance(stmt, ast.FunctionDef):
                scopes[-1][0][stmt.name] = (stmt, bind, scopes[-1][1])
                continue
            stmt = _Bind(bind).visit(copy.deepcopy(stmt))
            if isinstance(stmt, ast.If) and (returned := self.branch(stmt, scopes)) is not None:
                if returned:
                    return True
                continue
            self.statement(stmt, scopes)
            if isinstance(stmt, ast.Return):
                return True
        return False

    def branch(self, stmt: ast.If, scopes: list[Scope]) -> bool | None:
        """An ``if``: the branch its known test takes, read in place; in a function written out
        (``definition``), an undecided one as it stands. None: neither (the statement is skipped)."""
        test = _Fold(self.known).visit(self.expr(stmt.test, scopes))
        if isinstance(test, ast.Constant):
            return self.body(stmt.body if test.value else stmt.orelse, {}, scopes)
        if not self.block:
            return None
        returned = []
        for head, stmts in ((f"if {ast.unparse(test)}:", stmt.body), ("else:", stmt.orelse)):
            if stmts:
                sub = _Reader(self.given, self.known, block=True)
                returned.append(sub.body(stmts, {}, scopes))
                self.out += [(None, head)] + [(n, "    " + l) for n, l in sub.out]
        return len(returned) == 2 and all(returned)

    def statement(self, stmt: ast.stmt, scopes: list[Scope]) -> None:
        value = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr, ast.Return)) else None
        if value is None:
            if any(_is_record(n) for n in ast.walk(stmt)):
                raise ValueError(f"cannot read line {stmt.lineno}: a record outside an assignment")
            return
        if _is_record(value):
            self.record(value, stmt, scopes)
        elif isinstance(value, ast.Call) and self.recording_call(value, scopes):
            pass
        elif isinstance(stmt, (ast.Assign, ast.Return)):
            value = self.expr(value, scopes)
            if _uses_ops(value) or any(map(_uses_ops, getattr(stmt, "targets", ()))):   # ops = …, return ops.named
                return
            if isinstance(stmt, ast.Assign):
                self.line(None, " = ".join(map(_target, stmt.targets)), value, stmt)
            elif self.block:                 # a function written out (``definition``): its result
                self.out.append((None, f"return {_target(_Fold(self.known).visit(value))}"))

    def record(self, call: ast.Call, stmt: ast.stmt, scopes: list[Scope]) -> None:
        name_node, value = call.args
        name = name_node.value
        if name in self.given:
            self.out += self.given[name]
            return
        # the line assigns the forward's variable (m_new = record("m_after", …)), else the name
        assigned = isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
        self.line(name, stmt.targets[0].id if assigned else name, self.expr(value, scopes), stmt)

    def recording_call(self, call: ast.Call, scopes: list[Scope]) -> bool:
        """Write the lines of a called function that records; False if it records nothing."""
        found = self.callee(call, scopes)
        if found is None or found[0] == "first":
            return False
        stmts, bind, glb = found
        sub = _Reader(self.given, self.known)
        sub.body(stmts, bind, scopes + [({}, glb)])
        if not any(name is not None for name, _ in sub.out):
            return False
        self.out += sub.out
        return True


def shown_as_first(fn: Callable) -> Callable:
    """Mark ``fn`` as a guard around the chapter's expression, its first argument: the code panel
    shows that expression (what the chapter writes), the function's doc says what else it does."""
    fn.shown_as_first = True
    return fn
