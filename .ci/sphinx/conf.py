# Sphinx configuration for the docs site (the `quarto render` stand-in, .ci/docs_prep.py, runs Sphinx with it).
# Page list, title and description come from the notebooks, via the _site.json that docs_prep.py writes.
import json, os
from pathlib import Path

_src = Path(os.environ['OPENREWARD_DOCS_SRC'])
_site = json.loads((_src / '_site.json').read_text())

project = _site['title']
html_title = _site['title']
copyright = _site.get('copyright') or ''   # from settings.ini, so the footer names the holder
root_doc = 'index'
extensions = ['myst_nb']
exclude_patterns = ['_build', '**.ipynb_checkpoints', '_site.json']
html_theme = 'furo'
html_static_path = [str(_src / '_static')]  # written by docs_prep.py: the widget JavaScript, installed from npm
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
html_css_files = ['site.css']  # code and tables scroll instead of being cut off (.ci/sphinx/site.css)
smartquotes = False            # what a reader copies from code, outputs and prose is what was written

myst_enable_extensions = ['colon_fence', 'deflist']  # no dollarmath: "$5" stays text, and MathJax would come from a CDN
myst_heading_anchors = 3
myst_all_links_external = True  # links stay as written, Quarto style (`client.html#x`); the browser test checks them
nb_render_markdown_format = 'myst'  # Markdown outputs (result tables) render as HTML tables, as in Jupyter
nb_execution_mode = 'off'      # notebooks are executed by their authors (outputs are the docs), never here
nb_merge_streams = True
nb_output_stderr = 'remove-warn'
# Widget outputs: the state stored in each notebook is rendered by @jupyter-widgets/html-manager, served from
# this site's _static (copied from node_modules), never from a CDN. The `cdn` attribute points at a local folder
# that does not exist, so a widget library that is not bundled with html-manager fails visibly instead of being
# fetched from the internet at view time.
nb_ipywidgets_js = {
    'require.js': {},
    'embed-amd.js': {'data-jupyter-widgets-cdn': '_static/widget-modules/'},
}
