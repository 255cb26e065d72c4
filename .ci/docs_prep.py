"""Glue between nbdev's processed notebooks (`_proc/`) and a docs build without Quarto.

`quarto` cannot be installed on our machines, so `.ci/bin/quarto` stands in for it and calls this script:

- `render` (no file): the whole site. Every processed notebook becomes a plain notebook (front matter -> title and
  summary, Quarto cell options -> myst-nb tags, `show_doc` link attributes stripped), named after its
  `output-file` and ordered as in nbdev's sidebar, except that the guides (`nbs/guides/`) come first, as their own
  "Guides" group before the "Reference" pages; then Sphinx (myst-nb + furo) builds HTML with warnings as errors.
- `render NB -o README.md -t gfm`: one notebook as GitHub-flavoured markdown (what `nbdev_readme` asks for).

Both write into the project's `output-dir` (nbdev.yml: `_docs`) below the current directory, as Quarto does, so
stock `nbdev_docs`, `nbdev_readme` and `nbdev_prepare` pick the results up unchanged.
"""
import argparse, base64, configparser, html as htmllib, json, os, posixpath, re, shutil, subprocess, sys, tempfile
from pathlib import Path

import yaml

CI = Path(__file__).resolve().parent
ROOT = CI.parent
WIDGET_JS = {  # npm package files -> names in the site's _static (see .ci/docs: installed from npm, never a CDN)
    'node_modules/requirejs/require.js': 'require.js',
    'node_modules/@jupyter-widgets/html-manager/dist/embed-amd.js': 'embed-amd.js'}
WIDGET_ASSETS = re.compile(r'^[0-9a-f]{20}\.(?:woff2?|ttf|eot|svg)$')  # the fonts embed-amd.js loads next to itself
CELL_KEYS = {'markdown': ('cell_type', 'id', 'metadata', 'source', 'attachments'),
             'raw': ('cell_type', 'id', 'metadata', 'source', 'attachments'),
             'code': ('cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count')}
TAGS = {('echo', False): 'remove-input', ('include', False): 'remove-cell', ('output', False): 'remove-output'}
ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')


def die(msg: str):
    sys.exit(f'quarto stand-in: {msg}')


def src(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


# ---- reading nbdev's processed notebooks ---------------------------------------------------------------------------

def frontmatter(nb: dict) -> dict:
    "The YAML front matter nbdev puts in a leading raw cell ({} if none)."
    cells = nb['cells']
    if cells and cells[0]['cell_type'] == 'raw':
        m = re.fullmatch(r'\s*---\n(.*?)\n---\s*', src(cells[0]['source']), re.S)
        if m: return yaml.safe_load(m.group(1)) or {}
    return {}


def cell_options(source: str) -> tuple[dict, str]:
    "Split Quarto `#| key: value` lines off the top of a code cell."
    opts, lines = {}, source.splitlines()
    while lines and lines[0].startswith('#|'):
        k, _, v = lines.pop(0)[2:].partition(':')
        try: opts[k.strip()] = yaml.safe_load(v) if v.strip() else True
        except yaml.YAMLError: opts[k.strip()] = v.strip()
    return opts, '\n'.join(lines)


LINK_ATTRS = re.compile(r'(\]\([^)\s]*\))\{[^}\n]*\}')  # [source](url){target="_blank" style="..."}
CALLOUT = re.compile(r'^:::+\s*\{\.callout-(note|tip|warning|important|caution)[^}]*\}\s*$', re.M)


def clean_md(text: str) -> str:
    "Quarto-only markdown -> plain CommonMark/MyST: link attributes dropped, callouts as admonitions."
    text = LINK_ATTRS.sub(r'\1', text)
    return CALLOUT.sub(lambda m: ':::{' + m.group(1) + '}', text)


def clean_output(o: dict) -> dict:
    o = {k: v for k, v in o.items() if k in ('output_type', 'name', 'text', 'data', 'metadata', 'execution_count',
                                              'ename', 'evalue', 'traceback')}
    md = o.get('data', {}).get('text/markdown')
    if md is not None:  # show_doc: drop the leading rule (a section may not start with a transition) and link attrs
        o['data']['text/markdown'] = clean_md(re.sub(r'\A\s*---\s*\n', '', src(md)))
    return o


def plain_cells(cells: list):
    "Yield the cells with Quarto's cell options turned into myst-nb tags, and nbformat-valid keys only."
    for c in cells:
        c = {k: v for k, v in c.items() if k in CELL_KEYS.get(c['cell_type'], ())}
        c['metadata'] = {k: v for k, v in c.get('metadata', {}).items() if k in ('tags', 'jupyter', 'collapsed')}
        if c['cell_type'] == 'code':
            opts, c['source'] = cell_options(src(c['source']))
            tags = [t for (k, v), t in TAGS.items() if opts.get(k) is v]
            if tags: c['metadata']['tags'] = sorted(set(c['metadata'].get('tags', []) + tags))
            c['outputs'] = [clean_output(o) for o in c.get('outputs', [])]
        elif c['cell_type'] == 'markdown': c['source'] = clean_md(src(c['source']))
        else: c['source'] = src(c['source'])
        yield c


def md_cell(text: str) -> dict: return {'cell_type': 'markdown', 'metadata': {}, 'source': text}


def title_cells(fm: dict, fallback: str) -> list:
    head = f"# {fm.get('title') or fallback}"
    if fm.get('description'): head += '\n\n> ' + ' '.join(str(fm['description']).split())
    return [md_cell(head)]


# ---- the site ------------------------------------------------------------------------------------------------------

def page_order(proc: Path) -> list[Path]:
    "Notebooks in nbdev's sidebar order (sidebar.yml when present), the home page first."
    found = sorted(p.relative_to(proc) for p in proc.rglob('*.ipynb')
                   if not any(part.startswith(('.', '_')) for part in p.relative_to(proc).parts))
    order = []
    sb = proc / 'sidebar.yml'
    if sb.exists():
        def walk(items):
            for it in items or []:
                if isinstance(it, str): order.append(Path(it))
                elif isinstance(it, dict): walk(it.get('contents')); it.get('href') and order.append(Path(it['href']))
        walk((yaml.safe_load(sb.read_text()) or {}).get('website', {}).get('sidebar', {}).get('contents'))
    order = [p for p in dict.fromkeys(order) if p in found]
    order += [p for p in found if p not in order]  # anything the sidebar misses still gets a page
    # The home page, then the guides (nbs/guides/: tutorials, read first), then the reference (the top-level
    # notebooks), then any other folder. nbdev's sidebar.yml lists subfolders after the top level; here they lead.
    def part(p: Path) -> int: return 0 if p.as_posix() == 'index.ipynb' else 1 if p.parts[0] == GUIDES else 2 if len(p.parts) == 1 else 3
    return sorted(order, key=lambda p: (part(p), p.name != 'index.ipynb', order.index(p)))


def prep_site(proc: Path, out: Path) -> dict:
    "Write plain notebooks for Sphinx into `out`; return site metadata for conf.py."
    pages, names = [], {}
    for rel in page_order(proc):
        nb = json.loads((proc / rel).read_text(encoding='utf-8'))
        fm = frontmatter(nb)
        name = (rel.parent / Path(fm.get('output-file') or rel.name).stem).as_posix()
        if name in names.values(): die(f'two notebooks render to the same page {name}.html: {rel} and '
                                       f'{next(k for k, v in names.items() if v == name)}')
        names[rel.as_posix()] = name
        pages.append((name, fm, nb))
    if not pages: die(f'no notebooks in {proc}')
    if pages[0][0] != 'index': die('the site needs a home page: nbs/index.ipynb (output-file index.html)')
    # The pages of the reference's import paths (the facade notebooks that follow the public API page in the
    # notebooks' order: 90a_api_errors, 90g_models, ...) sit under that page, not in the top level.
    parent = next((k for k, v in names.items() if v == FACADE_PARENT), None)
    facades = [v for k, v in names.items() if parent and k != parent and '/' not in k
               and re.match(FACADE_NB, k) and k[:2] == parent[:2]]
    # Links are written as Quarto publishes them (`client.html#x`); conf.py passes them through untouched, and a
    # link to a source notebook (`06_client.ipynb`) becomes its page, as Quarto does. tests/test_docs_browser.py
    # checks that every link between pages resolves.
    nb_link = re.compile(r'(\]\()(' + '|'.join(re.escape(k) for k in sorted(names, key=len, reverse=True)) + r')([#)])')
    # nbdev writes links to documented names as absolute URLs of the published site (doc_host + doc_baseurl): in
    # this build they become relative, so the local site is self-contained (anchors are fixed after the build).
    site_url = published_url(proc)
    def relink(t: str, up: str) -> str:  # up: '../' per folder level of the page the text is on
        if site_url: t = t.replace(f'({site_url}/', '(' + up)
        return nb_link.sub(lambda m: m.group(1) + names[m.group(2)] + '.html' + m.group(3), t)
    for name, fm, nb in pages:
        up = '../' * name.count('/')
        cells = title_cells(fm, Path(name).name) if fm else []
        for c in plain_cells(nb['cells'][1:] if fm else nb['cells']):
            if c['cell_type'] == 'markdown': c['source'] = relink(c['source'], up)
            for o in c.get('outputs', []):
                if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = relink(o['data']['text/markdown'], up)
            cells.append(c)
        if name == 'index':  # the page tree, in sidebar order, hidden: furo shows it as the navigation
            shown = [n for n, *_ in pages if n != 'index' and n not in facades]
            guides = [n for n in shown if n.startswith(GUIDES + '/')]
            groups = [('Guides', guides), ('Reference', [n for n in shown if n not in guides])] if guides else [('', shown)]
            for caption, toc in groups:
                head = f':caption: {caption}\n' if caption else ''
                cells.append(md_cell(f'```{{toctree}}\n:hidden:\n{head}:maxdepth: 1\n\n' + '\n'.join(toc) + '\n```'))
        if name == FACADE_PARENT and facades:  # the import-path pages, one entry in the sidebar
            cells.append(md_cell(f'```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n' + '\n'.join(facades) + '\n```'))
        meta = {k: v for k, v in nb.get('metadata', {}).items() if k in ('kernelspec', 'language_info', 'widgets')}
        meta.setdefault('kernelspec', {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'})
        for i, c in enumerate(cells): c.setdefault('id', f'c{i}')
        dest = out / f'{name}.ipynb'
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps({'cells': cells, 'metadata': meta, 'nbformat': 4, 'nbformat_minor': 5}, indent=1),
                        encoding='utf-8')
    for p in proc.rglob('*'):  # images and other assets the pages link to
        rel = p.relative_to(proc)
        if p.is_file() and p.suffix.lower() in ('.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp') \
                and not any(part.startswith(('.', '_')) for part in rel.parts):
            (out / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(p, out / rel)
    home = pages[0][1]
    return {'title': home.get('title') or 'docs', 'description': home.get('description', ''),
            'copyright': settings(proc).get('copyright', ''), 'pages': [n for n, *_ in pages]}


FACADE_PARENT = 'public_api'
FACADE_NB = r'\d+[a-z]+_'  # a companion notebook of the parent's number: 90a_..., 90sc_...
GUIDES = 'guides'  # the folder of the tutorials (nbs/guides/), listed first in the navigation


def settings(start: Path) -> dict:
    "The [DEFAULT] section of the nbdev project's settings.ini at or above `start` ({} if none)."
    for d in (start, *start.resolve().parents):
        if (d / 'settings.ini').exists():
            cp = configparser.ConfigParser(interpolation=None)
            cp.read(d / 'settings.ini', encoding='utf-8')
            return dict(cp['DEFAULT'])
    return {}


def published_url(start: Path) -> str:
    "Where nbdev says the site is published (doc_host + doc_baseurl), without a trailing slash; '' if unset."
    s = settings(start)
    return (s.get('doc_host', '').rstrip('/') + '/' + s.get('doc_baseurl', '').strip('/')).rstrip('/') \
        if s.get('doc_host') else ''


def make_id(s: str) -> str:
    "The id docutils gives a section titled `s` (lower case, runs of other characters -> one hyphen)."
    return re.sub(r'[^a-z0-9]+', '-', s.lower()).strip('-')


HREF = re.compile(r'href="((?:\.\./|[^"#:/.][^"#:/]*/)*[^"#:/]+\.html)?#([^"]+)"')  # in-site, relative
IDS = re.compile(r'\sid="([^"]+)"')


def fix_anchors(html_dir: Path) -> int:
    "Point every in-site `page.html#anchor` at an id the page has: as written, as docutils spells it, or the page."
    pages = {p.relative_to(html_dir).as_posix(): p for p in html_dir.rglob('*.html')}
    ids = {k: set(IDS.findall(p.read_text(encoding='utf-8'))) for k, p in pages.items()}
    fixed = 0
    for k, p in pages.items():
        text = p.read_text(encoding='utf-8')
        def sub(m):
            nonlocal fixed
            target = posixpath.normpath(posixpath.join(posixpath.dirname(k), m.group(1))) if m.group(1) else k
            anchor = htmllib.unescape(m.group(2))
            have = ids.get(target)
            if have is None or anchor in have: return m.group(0)
            fixed += 1
            alt = make_id(anchor)
            return f'href="{m.group(1) or ""}#{alt}"' if alt in have else f'href="{m.group(1) or posixpath.basename(k)}"'
        new = HREF.sub(sub, text)
        if new != text: p.write_text(new, encoding='utf-8')
    return fixed


def widget_static(dest: Path) -> None:
    "Copy the npm-installed widget JavaScript (and the fonts it loads) into the site's static folder."
    npm = Path(os.environ.get('OPENREWARD_NPM_DIR', ROOT / '.cache' / 'npm'))
    missing = [s for s in WIDGET_JS if not (npm / s).exists()]
    if missing: die(f'widget JavaScript not installed in {npm} ({", ".join(missing)}): run `bash .ci/docs` '
                    f'(it does `npm install` there) or set OPENREWARD_NPM_DIR')
    dest.mkdir(parents=True, exist_ok=True)
    for s, d in WIDGET_JS.items(): shutil.copy2(npm / s, dest / d)
    dist = npm / 'node_modules/@jupyter-widgets/html-manager/dist'
    for f in dist.iterdir():
        if WIDGET_ASSETS.match(f.name): shutil.copy2(f, dest / f.name)


def output_dir(cwd: Path) -> str:
    for f in ('nbdev.yml', '_quarto.yml'):
        if (cwd / f).exists():
            d = ((yaml.safe_load((cwd / f).read_text()) or {}).get('project') or {}).get('output-dir')
            if d: return d
    return '_docs'


def render_site(cwd: Path, python: str) -> None:
    out = cwd / output_dir(cwd)
    with tempfile.TemporaryDirectory(prefix='docs-src-') as tmp:
        srcdir, html = Path(tmp) / 'src', Path(tmp) / 'build' / 'html'  # myst-nb writes next to html/: keep it in tmp
        site = prep_site(cwd, srcdir)
        widget_static(srcdir / '_static')
        shutil.copy2(CI / 'sphinx' / 'site.css', srcdir / '_static' / 'site.css')
        (srcdir / '_site.json').write_text(json.dumps(site))
        cmd = [python, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html', '-c', str(CI / 'sphinx'),
               '-d', str(Path(tmp) / 'build' / 'doctrees'), str(srcdir), str(html)]
        r = subprocess.run(cmd, env=dict(os.environ, OPENREWARD_DOCS_SRC=str(srcdir)))
        if r.returncode: die(f'sphinx failed (rc {r.returncode}): {" ".join(cmd)}')
        fix_anchors(html)
        for junk in ('.buildinfo', '.buildinfo.bak', '_sources'):
            p = html / junk
            if p.is_dir(): shutil.rmtree(p)
            else: p.unlink(missing_ok=True)
        if out.exists(): shutil.rmtree(out)
        shutil.move(html, out)
    print(f'quarto stand-in: built {len(site["pages"])} pages into {out}')


# ---- GitHub markdown (README) --------------------------------------------------------------------------------------

def fence(text: str, lang: str = '') -> str:
    text = text.rstrip('\n')
    ticks = '```'
    while ticks in text: ticks += '`'
    return f"{ticks}{lang}\n{text}\n{ticks}"


def gfm_output(o: dict, img) -> str | None:
    t = o['output_type']
    if t == 'stream': return fence(ANSI.sub('', src(o.get('text'))))
    if t == 'error': return fence(ANSI.sub('', '\n'.join(o.get('traceback', []))))
    d = o.get('data', {})
    if 'text/markdown' in d: return src(d['text/markdown']).strip()
    for mime, ext in (('image/png', 'png'), ('image/jpeg', 'jpg')):
        if mime in d: return f'![]({img(base64.b64decode(src(d[mime])), ext)})'
    if 'image/svg+xml' in d: return f'![]({img(src(d["image/svg+xml"]).encode(), "svg")})'
    if 'text/html' in d and 'application/vnd.jupyter.widget-view+json' not in d: return src(d['text/html']).strip()
    if 'text/plain' in d: return fence(ANSI.sub('', src(d['text/plain'])))
    return None


def render_gfm(nb_path: Path, out: Path) -> None:
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    fm = frontmatter(nb)
    cells = nb['cells'][1:] if fm else nb['cells']
    blocks = title_cells(fm, nb_path.stem)[0]['source'].split('\n\n') if fm else []
    files = out.parent / f'{nb_path.stem}_files' / 'figure-commonmark'
    if files.exists(): shutil.rmtree(files)
    for i, c in enumerate(plain_cells(cells)):
        if c['cell_type'] == 'markdown':
            blocks.append(c['source'].strip())
            continue
        if c['cell_type'] != 'code': continue
        tags = c['metadata'].get('tags', [])
        if 'remove-cell' in tags: continue
        if 'remove-input' not in tags and c['source'].strip(): blocks.append(fence(c['source'], 'python'))
        if 'remove-output' in tags: continue
        for j, o in enumerate(c['outputs']):
            def img(data: bytes, ext: str, _n=f'cell-{i + 1}-output-{j + 1}') -> str:
                files.mkdir(parents=True, exist_ok=True)
                (files / f'{_n}.{ext}').write_bytes(data)
                return f'{nb_path.stem}_files/figure-commonmark/{_n}.{ext}'
            b = gfm_output(o, img)
            if b: blocks.append(b)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('\n\n'.join(b for b in blocks if b) + '\n', encoding='utf-8')
    print(f'quarto stand-in: wrote {out}')


# ---- command line (what nbdev calls as `quarto ...`) ---------------------------------------------------------------

def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog='quarto render', description='Quarto stand-in: `render` only.')
    ap.add_argument('input', nargs='?', help='a notebook to render alone (default: the whole project)')
    ap.add_argument('-o', '--output', help='output file name, written into the output-dir (with an input)')
    ap.add_argument('-t', '--to', default='html', help='html (site) or gfm (one notebook to GitHub markdown)')
    ap.add_argument('--no-execute', action='store_true', help='accepted; notebooks are never executed here')
    ap.add_argument('--no-cache', action='store_true', help='accepted; nothing is cached')
    ap.add_argument('--python', default=sys.executable, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    cwd = Path.cwd()
    if a.input is None:
        if a.to != 'html' or a.output: die('a whole-project render only makes the HTML site')
        return render_site(cwd, a.python)
    if a.to not in ('gfm', 'commonmark', 'markdown', 'md'):
        die(f'rendering one file supports -t gfm only (got -t {a.to}); render the site with a bare `quarto render`')
    nb = Path(a.input)
    if nb.suffix != '.ipynb': die(f'only notebooks can be rendered, not {nb}')
    render_gfm(nb, cwd / output_dir(cwd) / (a.output or nb.with_suffix('.md').name))


if __name__ == '__main__':
    main(sys.argv[1:])
