"""The API reference of jaxdyn, generated from the source by static analysis (griffe).

Three parts, all read from the code and never from a hand-kept list, so the reference follows
the package whatever its modules and names become:

- the layout: every public module (no path component starting with ``_``) gets a page; its
  public names are its ``__all__``, or, without one, the names it defines that do not start
  with ``_``. A name exported by several modules is documented once, at its *home*: the deepest
  module on the path to its definition whose ``__all__`` lists it (``jaxdyn.engine`` for
  ``train``, defined in ``jaxdyn.engine.core``), else the module defining it; the other
  exporters list it with a link.
- a griffe extension (:class:`JaxdynDocstrings`) that turns the docstrings' Sphinx roles
  (``:func:`train```) into cross-references mkdocs-autorefs checks, and an experiment
  configuration's ``param(...)`` fields into a table of fields, types, defaults and ranges.
- mkdocs hooks (``on_config``, ``on_files``) that write the pages and their navigation.

What the docstrings lack (:func:`docstring_problems`: public names without a docstring, roles
that name nothing documented, ``Args:`` entries the signature lacks) does not fail the build: the
build logs it, and ``tests/test_docs.py`` fails on any problem beyond the listed baseline. Every
other warning (a link to no anchor, a page outside the navigation, a missing include) fails
``mkdocs build --strict``. Nothing here imports jaxdyn or JAX: griffe reads the source files.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import re
from collections import defaultdict
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "jaxdyn"
REFERENCE = "reference"  # folder of the generated pages inside docs/
NAV_PLACEHOLDER = f"{REFERENCE}/index.md"  # the nav entry of mkdocs.yml the generated nav replaces

log = logging.getLogger("mkdocs.plugins.jaxdyn")  # under "mkdocs": counted by --strict


# --------------------------------------------------------------------------------------------
# Layout: which modules get a page and where each public name is documented.


def load_package(root: Path = ROOT, extensions: griffe.Extensions | None = None) -> griffe.Module:
    """The package's source tree as griffe objects, read from ``root`` without importing it."""
    # try_relative_path=False: a ./jaxdyn folder in the working directory must not win over root.
    return griffe.load(PACKAGE, search_paths=[str(root)], try_relative_path=False, allow_inspection=False, resolve_aliases=True,
                       resolve_external=False, docstring_parser="google", extensions=extensions)


def _final(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    """The object an alias leads to, or None when it leads outside the package or nowhere."""
    if not obj.is_alias:
        return obj
    try:
        return obj.final_target
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def is_public_module(module: griffe.Module) -> bool:
    """True when no component of the module's dotted path starts with an underscore."""
    return not any(part.startswith("_") for part in module.path.split("."))


def public_modules(package: griffe.Module) -> list[griffe.Module]:
    """Every public module of ``package`` (itself first), depth first, in name order."""
    found = [package]
    for name in sorted(package.modules):
        module = package.modules[name]
        if not module.is_alias and is_public_module(module):
            found.extend(public_modules(module))
    return found


def public_names(module: griffe.Module) -> list[str]:
    """The module's ``__all__``, or, without one, the names it defines that do not start with ``_``."""
    if module.exports is not None:
        return [str(name) for name in module.exports]
    return [name for name, member in module.members.items()
            if not name.startswith("_") and not member.is_alias and not member.is_module]


@dataclasses.dataclass(frozen=True)
class ModulePage:
    """One generated page: a module, the names documented on it, and the names it re-exports.

    Attributes:
        module: dotted path of the module.
        members: public names documented here (this page is their home), in ``__all__`` order.
        reexports: ``(name, anchor)`` of public names documented on another page.
        submodules: dotted paths of the public modules one level below.
        broken: names in ``__all__`` that are not defined or imported in the module.
        is_package: whether the module is a package (its page is the index of a section).
    """

    module: str
    members: tuple[str, ...]
    reexports: tuple[tuple[str, str], ...]
    submodules: tuple[str, ...]
    broken: tuple[str, ...]
    is_package: bool

    @property
    def src_uri(self) -> str:
        """The page's path inside docs/: a package's is ``.../index.md``, a module's ``.../name.md``."""
        parts = self.module.split(".")
        return "/".join([REFERENCE, *parts, "index.md"]) if self.is_package else "/".join([REFERENCE, *parts]) + ".md"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The reference's pages and the anchor (documented path) of every public object.

    Attributes:
        pages: one per public module, in navigation order.
        anchors: canonical path of each public object (where it is defined) -> the path it is
            documented under (its home module + its exported name).
    """

    pages: tuple[ModulePage, ...]
    anchors: dict[str, str]

    def anchor(self, obj: griffe.Object) -> str | None:
        """The documented path of ``obj`` (a module, a public name or a member of one), or None."""
        if obj.is_module:
            return obj.path if is_public_module(obj) else None
        if obj.path in self.anchors:
            return self.anchors[obj.path]
        if obj.parent is not None and not obj.parent.is_module and not obj.name.startswith("_"):
            parent = self.anchor(obj.parent)
            return None if parent is None else f"{parent}.{obj.name}"
        return None


def build_layout(package: griffe.Module) -> Layout:
    """Where every public name of ``package`` is documented (see the module docstring)."""
    modules = public_modules(package)
    exporters: dict[str, list[tuple[str, str]]] = defaultdict(list)  # canonical path -> [(module, name)]
    for module in modules:
        for name in public_names(module):
            member = module.members.get(name)
            target = None if member is None else _final(member)
            if target is not None and not target.is_module:
                exporters[target.path].append((module.path, name))

    declared = {m.path for m in modules if m.exports is not None}
    anchors: dict[str, str] = {}
    for canonical, places in exporters.items():
        # An ``__all__`` on the path to the definition is the name's public home (the deepest
        # such); else the module that defines it; else the shallowest module exporting it.
        on_path = [p for p in places if canonical.startswith(p[0] + ".")]
        chosen = [p for p in on_path if p[0] in declared] or on_path
        module, name = max(chosen, key=lambda p: p[0].count(".")) if chosen else min(places, key=lambda p: p[0].count("."))
        anchors[canonical] = f"{module}.{name}"

    pages = []
    for module in modules:
        members, reexports, broken = [], [], []
        for name in public_names(module):
            member = module.members.get(name)
            if member is None:
                broken.append(name)
                continue
            target = _final(member)
            if target is None or target.is_module:
                continue
            anchor = anchors[target.path]
            if anchor == f"{module.path}.{name}":
                members.append(name)
            else:
                reexports.append((name, anchor))
        submodules = tuple(m.path for m in modules if m.parent is module)
        pages.append(ModulePage(module.path, tuple(members), tuple(reexports), submodules, tuple(broken), module.is_package or module.is_subpackage))
    return Layout(tuple(pages), anchors)


def documented_objects(package: griffe.Module, layout: Layout) -> dict[str, griffe.Object]:
    """Every object the reference documents, by anchor: modules, public names, and the public
    methods and attributes of public classes (inherited ones excluded: they are documented on
    the base)."""
    found: dict[str, griffe.Object] = {}
    for page in layout.pages:
        module = package if page.module == package.path else package[page.module[len(package.path) + 1:]]
        found[page.module] = module
        for name in page.members:
            obj = _final(module.members[name])
            found[f"{page.module}.{name}"] = obj
            if obj.is_class:
                for member_name, member in obj.members.items():
                    if not member_name.startswith("_") and not member.is_alias:
                        found[f"{page.module}.{name}.{member_name}"] = member
    return found


def _inherits_docstring(obj: griffe.Object) -> bool:
    """True when ``obj`` (a method) overrides a documented method of a base class in the package."""
    cls = obj.parent
    if cls is None or not cls.is_class:
        return False
    try:
        bases = cls.mro()
    except (ValueError, griffe.AliasResolutionError):
        return False
    return any(obj.name in base.members and _final(base.members[obj.name]) is not None
               and _final(base.members[obj.name]).docstring for base in bases)


def missing_docstrings(package: griffe.Module, layout: Layout | None = None) -> list[str]:
    """Anchors of the documented modules, public names and public methods that have no docstring.

    Attributes of classes are documented in their class's ``Attributes:`` section (or, for an
    experiment's configuration, by ``param(help=...)``) and are not required to have their own;
    a method that overrides a documented base method inherits its docstring.
    """
    layout = layout or build_layout(package)
    missing = []
    for anchor, obj in documented_objects(package, layout).items():
        if obj.docstring:
            continue
        if obj.parent is not None and obj.parent.is_class and (obj.is_attribute or _inherits_docstring(obj)):
            continue
        missing.append(anchor)
    return sorted(missing)


# --------------------------------------------------------------------------------------------
# The griffe extension: Sphinx roles to autorefs links; configuration fields to a table.

_ROLE = re.compile(r":(?:py:)?(func|class|meth|attr|mod|data|obj|exc|const):`(~?)([^`<>]+?)(?:\(\))?`")
_LITERAL_BLOCK = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)  # RST "text::" before a code block


def _lookup(collection: griffe.ModulesCollection, path: str) -> griffe.Object | None:
    """The object at dotted ``path``, following aliases inside the package; None if absent."""
    parts = path.split(".")
    if parts[0] not in collection.members:
        return None
    obj = collection.members[parts[0]]
    for part in parts[1:]:
        obj = _final(obj) if obj.is_alias else obj
        if obj is None or part not in obj.members:
            return None
        obj = obj.members[part]
    return _final(obj)


def resolve_reference(scope: griffe.Object, target: str, collection: griffe.ModulesCollection) -> griffe.Object | None:
    """The object a role's ``target`` names, read as Sphinx does: in ``scope`` and its parents
    (class, module, packages), then as an absolute path."""
    first, _, rest = target.partition(".")
    owner = scope
    while owner is not None:
        if first in owner.members:
            candidate = _final(owner.members[first])
            if candidate is not None:
                found = _lookup(collection, f"{candidate.path}.{rest}" if rest else candidate.path)
                if found is not None:
                    return found
        if owner.name == first and not owner.is_module:  # a class naming itself
            found = _lookup(collection, f"{owner.path}.{rest}" if rest else owner.path)
            if found is not None:
                return found
        owner = owner.parent
    return _lookup(collection, target)


def convert_roles(text: str, scope: griffe.Object, collection: griffe.ModulesCollection, layout: Layout,
                  by_name: dict[str, list[str]], unresolved: list[str]) -> str:
    """``text`` with each Sphinx role replaced by an autorefs link (``[`train`][jaxdyn.engine.train]``).

    The target is read as Sphinx reads it (:func:`resolve_reference`); failing that, a name that
    exactly one documented object has (``by_name``: last name -> anchors) is taken to mean it. A
    target that still names nothing documented becomes plain code and is appended to
    ``unresolved`` as ``"scope.path: :role:`target`"``.
    """

    def replace(match: re.Match) -> str:
        role, short, target = match.groups()
        shown = target.rsplit(".", 1)[-1] if short else target
        obj = resolve_reference(scope, target, collection)
        anchor = None if obj is None else layout.anchor(obj)
        if anchor is None:
            matches = [a for a in by_name.get(target.rsplit(".", 1)[-1], ()) if a.endswith("." + target)]
            anchor = matches[0] if len(matches) == 1 else None
        if anchor is None:
            unresolved.append(f"{scope.path}: :{role}:`{short}{target}`")
            return f"`{shown}`"
        return f"[`{shown}`][{anchor}]"

    return _LITERAL_BLOCK.sub(":", _ROLE.sub(replace, text))


def _names_index(anchors) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = defaultdict(list)
    for anchor in anchors:
        by_name[anchor.rsplit(".", 1)[-1]].append(anchor)
    return by_name


def convert_package_roles(package: griffe.Module, layout: Layout) -> list[str]:
    """Converts the roles of every docstring the reference shows (in place); returns the unresolved."""
    by_name = _names_index(documented_objects(package, layout))
    unresolved: list[str] = []
    for obj in list(_walk(package)):
        # Only what the reference shows: a documented object, or an __init__ merged into its class.
        owner = obj.parent if obj.name == "__init__" and obj.parent is not None else obj
        if obj.docstring and layout.anchor(owner) is not None:
            obj.docstring.value = convert_roles(obj.docstring.value, obj, package.modules_collection, layout, by_name, unresolved)
    return unresolved


def unknown_parameters(package: griffe.Module, layout: Layout) -> list[str]:
    """``"anchor: name"`` for each name an ``Args:`` section documents that the signature lacks.

    ``a, b: ...`` documents two parameters (the Google style's shared entry); ``*args`` and
    ``**kwargs`` may be written with or without their stars.
    """
    found = []
    for anchor, obj in documented_objects(package, layout).items():
        if not (obj.is_function or obj.is_class) or not obj.docstring:
            continue
        try:
            signature = {p.name for p in obj.parameters}
        except (AttributeError, ValueError):
            continue
        sections = griffe.parse_google(griffe.Docstring(obj.docstring.value, parent=obj), warnings=False)
        for section in sections:
            if section.kind is griffe.DocstringSectionKind.parameters:
                for parameter in section.value:
                    for name in (n.strip().lstrip("*") for n in parameter.name.split(",")):
                        if name and name not in signature:
                            found.append(f"{anchor}: {name}")
    return sorted(found)


def docstring_problems(package: griffe.Module | None = None) -> dict[str, list[str]]:
    """What the docstrings lack, by kind: ``missing`` (documented names without a docstring),
    ``unresolved`` (Sphinx roles naming nothing documented) and ``unknown_parameters``.

    Loads the package from the repository when none is given; prepares it (:func:`prepare_package`).
    """
    package = package or load_package()
    unresolved = prepare_package(package)
    layout = build_layout(package)
    return {"missing": missing_docstrings(package, layout),
            "unresolved": sorted(unresolved),
            "unknown_parameters": unknown_parameters(package, layout)}


class _Opaque:
    """A value static evaluation cannot know (a function, a call); shown by its source."""

    def __init__(self, source: str):
        self.source = source

    def __repr__(self) -> str:
        return self.source


_OPERATORS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Pow: lambda a, b: a ** b,
              ast.USub: lambda a: -a, ast.UAdd: lambda a: +a}
_CALLS = {"tuple": tuple, "list": list, "sorted": sorted, "set": set, "len": len, "float": float, "int": int}


def static_value(expr, scope: griffe.Object | None = None, depth: int = 0) -> object:
    """The value of a griffe expression, computed from the source without importing it.

    Literals, arithmetic, ``tuple``/``list``/``sorted``/``len`` of a value, and names of module
    constants (followed through imports, e.g. ``meanfield.SPACES`` or ``tuple(LOSSES)`` of a dict)
    are evaluated; a dict's values that are not (functions) become opaque, its keys stay usable.

    Raises:
        ValueError: the expression needs more than that (a call of jaxdyn code, a comprehension).
    """
    if depth > 8:
        raise ValueError(f"{expr}: constants nested too deeply")

    def evaluate(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = [evaluate(e) for e in node.elts]
            return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict):
            values = {}
            for key, value in zip(node.keys, node.values):
                try:
                    values[evaluate(key)] = evaluate(value)
                except ValueError:
                    values[evaluate(key)] = _Opaque(ast.unparse(value))
            return values
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.left), evaluate(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.operand))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS and len(node.args) == 1 and not node.keywords:
            return _CALLS[node.func.id](evaluate(node.args[0]))
        if isinstance(node, (ast.Name, ast.Attribute)) and scope is not None:
            target = resolve_reference(scope, ast.unparse(node), scope.modules_collection)
            if target is not None and target.is_attribute and target.value is not None:
                return static_value(target.value, target.parent, depth + 1)
        raise ValueError(f"{ast.unparse(node)}: not a constant of the source")

    try:
        tree = ast.parse(str(expr), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{expr}: not an expression") from exc
    return evaluate(tree.body)


def _value_or_source(expr, scope: griffe.Object) -> object:
    """:func:`static_value` of ``expr``, or its source text (opaque) when it is not computable."""
    try:
        return static_value(expr, scope)
    except (ValueError, TypeError, ArithmeticError):
        return _Opaque(str(expr))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _type_name(annotation) -> str:
    text = str(annotation)
    match = re.fullmatch(r"tuple\[(\w+), \.\.\.\]", text)
    return f"list of {match.group(1)}" if match else text


def _allowed(meta: dict) -> str:
    """The constraints of a ``param`` field in words: ``0 < x <= 90``, ``one of a, b``, lengths."""
    lo, hi, strict = meta.get("min"), meta.get("max"), meta.get("min_exclusive", False)
    parts = []
    choices = meta.get("choices")
    if isinstance(choices, _Opaque):  # computed at run time: show the code that computes them
        parts.append(f"one of `{choices}`")
    elif choices is not None:
        parts.append("one of " + ", ".join(f"`{c}`" for c in choices))
    if lo is not None and hi is not None:
        parts.append(f"{lo} {'<' if strict else '≤'} x ≤ {hi}")
    elif lo is not None:
        parts.append(f"x {'>' if strict else '≥'} {lo}")
    elif hi is not None:
        parts.append(f"x ≤ {hi}")
    return "; ".join(parts)


def _quick_overrides(cls: griffe.Class) -> dict[str, str]:
    """Field -> source of its value in the ``quick`` preset, when ``quick`` is ``return cls(k=v, ...)``."""
    quick = cls.members.get("quick")
    if quick is None or quick.is_alias or not quick.source:
        return {}
    try:
        tree = ast.parse(quick.source.strip())
    except SyntaxError:
        return {}
    returns = [node for node in ast.walk(tree) if isinstance(node, ast.Return)]
    if len(returns) != 1 or not isinstance(call := returns[0].value, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id != "cls":
        return {}
    return {kw.arg: ast.unparse(kw.value) for kw in call.keywords if kw.arg}


def config_fields_table(cls: griffe.Class) -> str | None:
    """A Markdown table of the ``param(...)`` fields of an experiment configuration class, or None.

    Columns: field, type, default, the ``quick`` preset's value where it differs, the allowed
    values (bounds apply to each element of a list field) and the field's help line.
    """
    rows, quick = [], _quick_overrides(cls)
    for name, member in cls.members.items():
        value = None if member.is_alias or not member.is_attribute else member.value
        if not isinstance(value, griffe.ExprCall) or str(value.function) != "param":
            continue
        positional = [a for a in value.arguments if not isinstance(a, griffe.ExprKeyword)]
        keywords = {a.name: a.value for a in value.arguments if isinstance(a, griffe.ExprKeyword)}
        meta = {k: _value_or_source(v, cls) for k, v in keywords.items()}
        default = str(positional[0]) if positional else str(keywords.get("default", ""))
        if any(isinstance(node, ast.Name) for node in ast.walk(ast.parse(default, mode="eval"))):
            default = repr(_value_or_source(default, cls))  # a named constant: show its value
        help_text = _value_or_source(positional[1], cls) if len(positional) > 1 else meta.get("help", "")
        allowed = _allowed(meta)
        if str(member.annotation).startswith("tuple"):
            lo, hi = meta.get("min_len", 1), meta.get("max_len")
            allowed = (f"each {allowed}; " if allowed else "") + (f"{lo} to {hi} values" if hi else f"at least {lo} value{'s' if lo != 1 else ''}")
        rows.append((name, _type_name(member.annotation), f"`{default}`", f"`{quick[name]}`" if name in quick else "",
                     allowed, help_text))
    if not rows:
        return None
    header = "| field | type | default | quick | allowed | meaning |\n| --- | --- | --- | --- | --- | --- |\n"
    return header + "\n".join("| " + " | ".join(_cell(c) for c in (f"`{r[0]}`", *r[1:])) + " |" for r in rows)


def _is_config_class(cls: griffe.Class) -> bool:
    try:
        return any(base.path == f"{PACKAGE}.experiments.base.Config" for base in cls.mro())
    except (ValueError, griffe.AliasResolutionError):
        return False


def registered_experiments(module: griffe.Module) -> list[dict[str, str]]:
    """The ``Experiment(name=..., work=..., description=..., config=...)`` a module registers, read
    from the source: its ``EXPERIMENT = Experiment(...)`` (or the entries of an ``EXPERIMENTS``
    list); keyword arguments only (as the modules write them)."""
    calls = []
    single = module.members.get("EXPERIMENT")
    if single is not None and not single.is_alias and isinstance(single.value, griffe.ExprCall):
        calls.append(single.value)
    listed = module.members.get("EXPERIMENTS")
    if listed is not None and not listed.is_alias and isinstance(listed.value, griffe.ExprList):
        calls.extend(listed.value.elements)
    found = []
    for call in calls:
        if isinstance(call, griffe.ExprCall) and str(call.function).endswith("Experiment"):
            entry = {}
            for argument in call.arguments:
                if isinstance(argument, griffe.ExprKeyword):
                    try:
                        entry[argument.name] = static_value(argument.value, module)
                    except (ValueError, TypeError):
                        entry[argument.name] = str(argument.value)
            if "name" in entry:
                found.append(entry)
    return found


def _walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _attribute_descriptions(obj: griffe.Object) -> dict[str, str]:
    """Name -> description of each entry of the ``Attributes:`` sections of ``obj``'s docstring."""
    if not obj.docstring:
        return {}
    sections = griffe.parse_google(griffe.Docstring(obj.docstring.value, parent=obj), warnings=False)
    return {item.name: item.description for section in sections
            if section.kind is griffe.DocstringSectionKind.attributes for item in section.value}


def prepare_package(package: griffe.Module) -> list[str]:
    """Rewrites the package's docstrings, in place, into what the reference shows.

    - An experiment configuration (a subclass of ``jaxdyn.experiments.base.Config``) gets the
      table of its ``param`` fields (:func:`config_fields_table`) instead of one entry per field.
    - A class's (or module's) ``Attributes:`` entries become the docstrings of those attributes (mkdocs.yml
      hides the sections, so each attribute is described once, under its own anchor); instance
      attributes that neither have nor get a docstring (state set in ``__init__``) are dropped.
    - An ``EXPERIMENT`` (or ``EXPERIMENTS`` list) without a docstring gets one naming the command it registers.
    - Sphinx roles become autorefs links (:func:`convert_package_roles`).

    Returns:
        The roles that name nothing documented (shown as code), as ``"path: :role:`target`"``.
    """
    layout = build_layout(package)
    for obj in list(_walk(package)):
        if obj.is_class and _is_config_class(obj) and (table := config_fields_table(obj)):
            text = obj.docstring.value if obj.docstring else ""
            fields = "Fields (`--set field=value`; bounds of a list field apply to each value):"
            obj.docstring = griffe.Docstring(f"{text}\n\n{fields}\n\n{table}", parent=obj)
            for row in table.splitlines()[2:]:
                obj.del_member(row.split("`")[1])  # the table documents them; no second entry
        if obj.is_class or obj.is_module:
            described = _attribute_descriptions(obj)
            for name, member in list(obj.members.items()):
                if member.is_alias or not member.is_attribute or member.docstring:
                    continue
                if name in described:
                    member.docstring = griffe.Docstring(described[name], parent=member)
                elif "instance-attribute" in member.labels:
                    obj.del_member(name)
        if obj.is_attribute and obj.name in ("EXPERIMENT", "EXPERIMENTS") and obj.parent.is_module and not obj.docstring:
            lines = [f"Registers `jaxdyn run {e['name']}` (work: {e.get('work', '?')}): {e.get('description', '')}."
                     for e in registered_experiments(obj.parent)]
            if lines:
                obj.docstring = griffe.Docstring("\n\n".join(lines), parent=obj)
    return convert_package_roles(package, layout)


class JaxdynDocstrings(griffe.Extension):
    """Prepares jaxdyn's docstrings for mkdocstrings once the package is loaded (:func:`prepare_package`).

    The autorefs links it writes are checked by mkdocs-autorefs (a link to an anchor no page
    has fails ``mkdocs build --strict``); a role naming nothing documented is shown as code and
    logged, and :func:`docstring_problems` lists it for the tests.
    """

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        if pkg.name != PACKAGE:
            return
        loader.resolve_aliases(implicit=False, external=False)
        unresolved = prepare_package(pkg)
        if unresolved:  # listed by tests/test_docs.py
            log.info("%d docstring roles name nothing the reference documents: %s", len(unresolved), "; ".join(unresolved))


# --------------------------------------------------------------------------------------------
# The pages and the mkdocs hooks.


def _summary(obj: griffe.Object | None) -> str:
    """The first line of a docstring, or nothing."""
    if obj is None or not obj.docstring:
        return ""
    return obj.docstring.value.strip().splitlines()[0]


def page_markdown(page: ModulePage, package: griffe.Module, layout: Layout) -> str:
    """The Markdown of one reference page: the module, its own names, re-exports, submodules."""
    module = package if page.module == package.path else package[page.module[len(package.path) + 1:]]
    members = "[" + ", ".join(page.members) + "]" if page.members else "false"
    text = [f"---\ntitle: {page.module}\n---\n", f"::: {page.module}\n    options:\n      members: {members}\n"]
    if page.reexports:
        text.append("## Re-exported here\n\nDocumented where they belong; importable from here too.\n")
        text.append("| name | documented at | summary |\n| --- | --- | --- |")
        for name, anchor in page.reexports:
            target = _final(module.members[name])
            text.append(f"| `{name}` | [`{anchor}`][{anchor}] | {_cell(_summary(target))} |")
        text.append("")
    if page.module == f"{PACKAGE}.experiments":
        rows = []
        for path in page.submodules:
            sub = package[path[len(package.path) + 1:]]
            for entry in registered_experiments(sub):
                rows.append(f"| `{entry['name']}` | {_cell(entry.get('work', ''))} | {_cell(entry.get('description', ''))} | [`{path}`][{path}] |")
        if rows:
            text.append("## Registered experiments\n\n`jaxdyn run NAME`; each module's page has its configuration's fields.\n")
            text.append("| name | work | description | module |\n| --- | --- | --- | --- |")
            text.extend(rows)
            text.append("")
    if page.submodules:
        text.append("## Modules\n")
        text.extend(f"- [`{path}`][{path}]: {_summary(package[path[len(package.path) + 1:]])}" for path in page.submodules)
        text.append("")
    return "\n".join(text)


def index_markdown(package: griffe.Module, layout: Layout) -> str:
    """The reference's front page: what it covers, counted, and every module with its summary."""
    objects = documented_objects(package, layout)
    modules = sum(1 for obj in objects.values() if obj.is_module)
    top = sum(len(p.members) for p in layout.pages)
    text = [
        "# API reference\n",
        "Generated from the docstrings by [mkdocstrings](https://mkdocstrings.github.io/) at every build "
        "(static analysis with griffe: nothing is imported). Each public name is documented once, where it "
        "belongs; a package that re-exports it links there.\n",
        f"This build covers **{len(objects)} public names**: {modules} modules, {top} module-level names "
        f"(functions, classes, constants) and {len(objects) - modules - top} public methods and attributes of classes.\n",
        "| module | summary |\n| --- | --- |",
    ]
    text.extend(f"| [`{p.module}`][{p.module}] | {_cell(_summary(objects[p.module]))} |" for p in layout.pages)
    return "\n".join(text) + "\n"


def _nav(layout: Layout) -> list:
    """The navigation of the reference: packages as sections (their page first), modules inside."""
    pages = {p.module: p for p in layout.pages}

    def entry(page: ModulePage, full_name: bool):
        if not page.is_package:  # inside a package's section, a module goes by its own name
            return {page.module if full_name else page.module.rsplit(".", 1)[-1]: page.src_uri}
        return {page.module: [page.src_uri, *(entry(pages[s], False) for s in page.submodules)]}

    root = pages[PACKAGE]
    return [NAV_PLACEHOLDER, {PACKAGE: root.src_uri}, *(entry(pages[s], True) for s in root.submodules)]


def _replace_placeholder(nav, generated):
    """``nav`` (mkdocs.yml's) with the entry pointing at NAV_PLACEHOLDER replaced by ``generated``."""
    if isinstance(nav, list):
        return [_replace_placeholder(item, generated) for item in nav]
    if isinstance(nav, dict):
        return {title: (generated if value == NAV_PLACEHOLDER else _replace_placeholder(value, generated)) for title, value in nav.items()}
    return nav


# One build reads the package once: on_config prepares it, on_files (the same build) takes it.
_PREPARED: dict[int, tuple[griffe.Module, Layout]] = {}


def _prepared(config) -> tuple[griffe.Module, Layout]:
    package = load_package(Path(config.config_file_path).parent)
    prepare_package(package)  # docstrings as the reference shows them
    return package, build_layout(package)


def on_config(config):
    """mkdocs hook: the reference's navigation, from the package's modules."""
    package, layout = _PREPARED[id(config)] = _prepared(config)
    if config.nav is not None:
        config.nav = _replace_placeholder(config.nav, _nav(layout))
    for page in layout.pages:
        for name in page.broken:
            log.warning("%s.__all__ lists %r, which the module does not define or import", page.module, name)
    missing = missing_docstrings(package, layout)
    if missing:  # the tests' concern (tests/test_docs.py), not the build's
        log.info("%d documented names have no docstring: %s", len(missing), ", ".join(missing))
    return config


def on_files(files, config):
    """mkdocs hook: adds the generated reference pages to the site's files."""
    from mkdocs.structure.files import File

    package, layout = _PREPARED.pop(id(config), None) or _prepared(config)
    files.append(File.generated(config, NAV_PLACEHOLDER, content=index_markdown(package, layout)))
    for page in layout.pages:
        files.append(File.generated(config, page.src_uri, content=page_markdown(page, package, layout)))
    return files
