# Written for k8ssandra-operator-rs (Apache-2.0). Shipped as key `sitecustomize.py` of the
# `<cluster>-medusa` ConfigMap, which Medusa's containers mount at /etc/medusa.
#
# A MedusaRestoreJob with spec.keyspaces or spec.tables puts /etc/medusa on PYTHONPATH of
# the `medusa-restore` init container and names the keyspaces and tables in
# MEDUSA_RESTORE_KEYSPACES / MEDUSA_RESTORE_TABLES (comma-separated). Medusa's restore entry
# point passes empty sets to restore_node; when the module is loaded, this hook makes it
# pass those names instead, and keeps the system keyspaces out unless they are named. A
# name the node's backup does not hold stops the restore before any file is touched.
# Without either variable nothing here does anything.
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys

_MODULE = "medusa.restore_node"


def _names(var):
    return {n.strip() for n in os.environ.get(var, "").split(",") if n.strip()}


def _select(module, keyspaces, tables):
    filter_fqtns = module.filter_fqtns
    restore_node = module.restore_node

    def only_named(keep_keyspaces, keep_tables, manifest, ignore_system_keyspaces=False):
        sections = json.loads(manifest)
        held = {s["keyspace"] for s in sections}
        held_tables = {"{}.{}".format(s["keyspace"], s["columnfamily"].split("-")[0]) for s in sections}
        missing = sorted(keyspaces - held) + sorted(tables - held_tables)
        if missing:
            sys.exit("selective restore: not in this node's backup: {} (MEDUSA_RESTORE_KEYSPACES={!r}, "
                     "MEDUSA_RESTORE_TABLES={!r}); nothing was restored".format(
                         ", ".join(missing), ",".join(sorted(keyspaces)), ",".join(sorted(tables))))
        # Medusa keeps system keyspaces in any selective restore; only a named one is wanted.
        return filter_fqtns(keep_keyspaces, keep_tables, manifest, True)

    def selective_restore(config, temp_dir, backup_name, in_place, keep_auth, seeds, verify,
                          _keyspaces, _tables, *args, **kwargs):
        print("selective restore of keyspaces {} and tables {}".format(sorted(keyspaces), sorted(tables)))
        return restore_node(config, temp_dir, backup_name, in_place, keep_auth, seeds, verify,
                            set(keyspaces), set(tables), *args, **kwargs)

    module.filter_fqtns = only_named
    module.restore_node = selective_restore


class _Hook(importlib.abc.MetaPathFinder):
    def __init__(self, keyspaces, tables):
        self.keyspaces, self.tables = keyspaces, tables

    def find_spec(self, name, path, target=None):
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _select(module, self.keyspaces, self.tables)

        spec.loader.exec_module = exec_module
        return spec


def _install():
    keyspaces, tables = _names("MEDUSA_RESTORE_KEYSPACES"), _names("MEDUSA_RESTORE_TABLES")
    if keyspaces or tables:
        sys.meta_path.insert(0, _Hook(keyspaces, tables))


def _chain():
    # Run the sitecustomize this file hides, if the image has one.
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_install()
_chain()
