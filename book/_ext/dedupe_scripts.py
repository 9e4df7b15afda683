"""Sphinx extension: drop repeated <script> entries from each page.

sphinx-thebe 0.3.1 registers its inline configuration script on every `env-before-read-docs`
event, which Jupyter Book 1 fires more than once: notebook pages then declare `const THEBE_JS_URL`
twice, a JavaScript error in every reader's console. Keep the first of identical scripts (an
inline script's filename is None or "" depending on who added it: both mean none).
"""


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", None) or "", repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts, priority=10000)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
