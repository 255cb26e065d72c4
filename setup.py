from configparser import ConfigParser
import setuptools

# Reads settings.ini (nbdev 2) so that the package metadata has one source.
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o: cfg[o] for o in cfg_keys}

statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.11 3.12 3.13 3.14'.split()

requirements = cfg.get('requirements', '').split()
min_python = cfg['min_python']
lic = 'Apache-2.0'
dev_requirements = cfg.get('dev_requirements', '').split()
fast_requirements = cfg.get('fast_requirements', '').split()  # `openreward[fast]`: uvicorn picks them up itself
console_scripts = [s for s in (cfg.get('console_scripts') or '').splitlines() if s.strip()]

setuptools.setup(
    name = cfg['lib_name'],
    license = lic,
    classifiers = [
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]],
    url = cfg['git_url'],
    packages = setuptools.find_packages(include=['openreward', 'openreward.*']),
    include_package_data = True,
    install_requires = requirements,
    extras_require = {'dev': dev_requirements, 'fast': fast_requirements},
    python_requires = '>=' + cfg['min_python'],
    long_description = open('README.md', encoding='utf-8').read(),
    long_description_content_type = 'text/markdown',
    zip_safe = False,
    entry_points = {
        'console_scripts': console_scripts,
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d'],
    },
    **setup_cfg)
