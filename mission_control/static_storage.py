"""Production static storage: WhiteNoise's hashed, compressed files, ES modules included.

The dashboard's ES modules import each other by relative path. Django's manifest
storage rewrites those `import`/`export ... from` paths to the hashed names only
when `support_js_module_import_aggregation` is on, so a new deploy never mixes a
fresh module with a cached old one.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ModuleManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
