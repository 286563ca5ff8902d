"""Mechanisms from outside the package: a Python file (``my_mech.py``) or an importable module
(``mypkg.my_mech``) whose options class is decorated with ``@register`` (docs/extending.md).

``model.plugins`` names them in a config; ``nmt fit`` imports them, and the checkpoint records the
names. Reading a checkpoint never imports code by itself: a model that names a plugin loads only
after the user has loaded that plugin (``--plugins`` on the command line, ``Translator(...,
plugins=...)``); otherwise the error names it. A plugin is known by its name: the file's stem
(``path/to/my_mech.py`` -> ``my_mech``) or the module path, so a moved file still matches.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Sequence
from pathlib import Path

from nmt.config import ConfigError

PACKAGE = "nmt_plugins"  # plugin files are imported as nmt_plugins.<stem>
LOADED: dict[str, str] = {}  # plugin name -> the file or module it was loaded from


def plugin_name(plugin: str) -> str:
    """The name a plugin is known by: the file's stem for a ``.py`` path, else the module path."""
    return Path(plugin).stem if plugin.endswith(".py") else plugin


def load_plugins(plugins: Sequence[str], where: str = "--plugins") -> None:
    """Import each plugin (once); ConfigError naming ``where`` and the plugin when a file is missing,
    a module cannot be found, its code fails, or two different files share a name."""
    for plugin in plugins:
        name = plugin_name(plugin)
        origin = str(Path(plugin).resolve()) if plugin.endswith(".py") else plugin
        if name in LOADED:
            if LOADED[name] != origin:
                raise ConfigError(f"{where}: plugin {plugin} has the name {name!r} of the plugin already loaded"
                                  f" from {LOADED[name]}; rename one of the files")
            continue
        try:
            if plugin.endswith(".py"):
                _import_file(Path(plugin), name, where)
            else:
                importlib.import_module(plugin)
        except ConfigError:
            raise
        except ModuleNotFoundError as e:
            raise ConfigError(f"{where}: plugin module {plugin!r} not found ({e}); give a .py file or an"
                              " importable module") from None
        except Exception as e:  # the plugin's own code failed: name it, keep the reason
            raise ConfigError(f"{where}: importing plugin {plugin} failed: {type(e).__name__}: {e}") from e
        LOADED[name] = origin


def _import_file(path: Path, name: str, where: str) -> None:
    if not path.is_file():
        raise ConfigError(f"{where}: plugin file {path} not found")
    module_name = f"{PACKAGE}.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{where}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    if PACKAGE not in sys.modules:  # so that ``import nmt_plugins.<name>`` finds it
        package = types.ModuleType(PACKAGE, "Plugins loaded from files (nmt.modules.plugins)")
        package.__path__ = []
        sys.modules[PACKAGE] = package
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def require_plugins(plugins: Sequence[str], key: str = "model.plugins") -> None:
    """ConfigError unless every plugin named (by a config or a checkpoint) has been loaded."""
    missing = [p for p in plugins if plugin_name(p) not in LOADED]
    if missing:
        raise ConfigError(
            f"{key}: the model uses mechanism code from plugin(s) {', '.join(missing)}, which are not loaded."
            " A checkpoint never imports code by itself: pass them with --plugins FILE.py (command line) or"
            " plugins=[...] (nmt.Translator)")
