"""Make ``import textattack`` work offline, touching nothing outside the project's cache folder.

What TextAttack 0.3.x does on import, and what this module does about it:

* Its first import runs a "post-install" step that calls ``nltk.download`` for six corpora (a
  network attempt each) unless a marker file ``post_install_check_N`` exists in its cache folder
  (``$TA_CACHE_DIR``, else ``~/.cache/textattack``). We point ``TA_CACHE_DIR`` at
  ``<seam cache>/textattack`` and create the marker there, so nothing is downloaded.
* ``textattack.augmentation`` builds a ``StopwordModification()`` at import, which reads NLTK's
  English ``stopwords`` corpus and fails without it. That corpus cannot be downloaded here, so we
  write it ourselves: NLTK's English list (179 words, public domain), in NLTK's corpus layout
  (``corpora/stopwords/english``, one word a line) under ``<seam cache>/nltk_data``, and put that
  folder first on ``nltk.data.path``.
* With ``TA_CACHE_DIR`` set it also overwrites ``HF_HOME``, ``XDG_CACHE_HOME``, ``TFHUB_CACHE_DIR``,
  ``PYTORCH_TRANSFORMERS_CACHE`` and ``TOKENIZERS_PARALLELISM`` in ``os.environ``, and its import
  pulls in matplotlib, which creates ``~/.config/matplotlib``. We set ``MPLCONFIGDIR`` inside our
  cache for the import and restore every environment variable afterwards.
* WordNet (for synonym swaps) is optional. If an NLTK ``corpora/wordnet`` is already on the NLTK
  path it is used; if a WordNet 3.0 dictionary folder exists (Debian's ``wordnet-base`` package
  installs one at ``/usr/share/wordnet``, and ``wordnet-sense-index`` adds the ``index.sense`` NLTK
  needs), ``prepare()`` copies it into our NLTK folder, adding the ``lexnames`` file Debian leaves out. Otherwise the WordNet transformation is simply
  unavailable. Nothing is ever downloaded.

Run ``python -m seam.textattack_env`` (``make setup`` does) to prepare and check; the adv builder
calls `import_textattack()`, which prepares on demand, so a fresh clone works either way.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

from .cache import cache_dir
from .errors import SeamError
from .io import atomic_output, write_text

# NLTK's English stopword list (nltk_data corpora/stopwords/english), in its order.
ENGLISH_STOPWORDS = (
    "i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves "
    "he him his himself she she's her hers herself it it's its itself they them their theirs themselves "
    "what which who whom this that that'll these those am is are was were be been being have has had having "
    "do does did doing a an the and but if or because as until while of at by for with about against between "
    "into through during before after above below to from up down in out on off over under again further then "
    "once here there when where why how all any both each few more most other some such no nor not only own same "
    "so than too very s t can will just don don't should should've now d ll m o re ve y ain aren aren't couldn "
    "couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn "
    "mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't"
).split()

DEFAULT_MARKER = "post_install_check_3"  # textattack 0.3.11; read from its source when possible
WORDNET_SYSTEM_DIRS = ("/usr/share/wordnet",)  # Debian/Ubuntu `wordnet-base`
_WORDNET_NEEDED = ("index.noun", "data.noun", "index.verb", "data.verb", "index.adj", "data.adj",
                   "index.adv", "data.adv", "index.sense")
_ENV_TOUCHED = ("TA_CACHE_DIR", "HF_HOME", "XDG_CACHE_HOME", "TFHUB_CACHE_DIR", "PYTORCH_TRANSFORMERS_CACHE",
                "TOKENIZERS_PARALLELISM", "MPLCONFIGDIR")


def nltk_dir() -> Path:
    """The project's NLTK data folder (``<seam cache>/nltk_data``)."""
    return cache_dir("nltk_data")


def textattack_cache() -> Path:
    """The folder used as TextAttack's ``TA_CACHE_DIR``."""
    return cache_dir("textattack")


def post_install_marker_name() -> str:
    """Name of TextAttack's post-install marker file, read from the installed package's source."""
    spec = importlib.util.find_spec("textattack")
    if spec and spec.submodule_search_locations:
        src = Path(list(spec.submodule_search_locations)[0]) / "shared" / "utils" / "install.py"
        try:
            m = re.search(r"path_in_cache\(\s*[\"'](post_install_check[^\"']*)[\"']", src.read_text(encoding="utf-8"))
        except OSError:
            m = None
        if m:
            return m.group(1)
    return DEFAULT_MARKER


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)


# The lexicographer files of WordNet 3.0 (lexnames(5WN)); NLTK reads them from a `lexnames` file,
# which Debian's wordnet-base does not ship.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
_LEX_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_WORDNET_FILES = ("cntlist.rev", "lexnames", "index.sense", "index.adj", "index.adv", "index.noun", "index.verb",
                  "data.adj", "data.adv", "data.noun", "data.verb", "adj.exc", "adv.exc", "noun.exc", "verb.exc")


def _link_wordnet(nltk_root: Path, sources=WORDNET_SYSTEM_DIRS) -> Path | None:
    """Make ``corpora/wordnet`` from a WordNet 3.0 dictionary folder: a copy of its files (NLTK
    refuses symlinks that leave its data folder; about 30 MB) plus a generated ``lexnames`` when
    the folder has none. None when no such folder exists."""
    target = nltk_root / "corpora" / "wordnet"
    if (target / "lexnames").is_file() and (target / "data.noun").is_file():
        return target
    for src in sources:
        src = Path(src)
        if not all((src / f).is_file() for f in _WORDNET_NEEDED):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # OSError: another process finished first
            with atomic_output(target) as tmp:
                tmp.mkdir()
                for name in _WORDNET_FILES:
                    if (src / name).is_file():
                        shutil.copyfile(src / name, tmp / name)
                if not (tmp / "lexnames").exists():
                    (tmp / "lexnames").write_text("".join(
                        f"{i:02d}\t{name}\t{_LEX_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES)))
                shutil.rmtree(target, ignore_errors=True)
        return target
    return None


def prepare(wordnet_sources=WORDNET_SYSTEM_DIRS) -> dict:
    """Write the stopwords corpus and the post-install marker (idempotent); link WordNet if present.

    Returns {"nltk_data", "textattack_cache", "marker", "wordnet"} paths (wordnet may be None).
    """
    root = nltk_dir()
    stop = root / "corpora" / "stopwords"
    _write_if_changed(stop / "english", "\n".join(ENGLISH_STOPWORDS) + "\n")
    _write_if_changed(stop / "README", "English stopwords as in NLTK's stopwords corpus, written by seam.textattack_env "
                      "(the corpus cannot be downloaded offline).\n")
    wordnet = _link_wordnet(root, wordnet_sources)
    ta = textattack_cache()
    marker = ta / post_install_marker_name()
    if not marker.exists():
        marker.touch()
    return {"nltk_data": root, "textattack_cache": ta, "marker": marker, "wordnet": wordnet}


def use_nltk_dir() -> Path:
    """Put the project's NLTK folder first on ``nltk.data.path`` (idempotent)."""
    import nltk

    root = str(nltk_dir())
    if not nltk.data.path or nltk.data.path[0] != root:
        if root in nltk.data.path:
            nltk.data.path.remove(root)
        nltk.data.path.insert(0, root)
    return Path(root)


def wordnet_available() -> bool:
    """True when an NLTK WordNet corpus can be read without any download."""
    use_nltk_dir()
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        try:
            nltk.data.find("corpora/wordnet.zip")
        except LookupError:
            return False
    return True


@contextlib.contextmanager
def _restored_environ(overrides: dict[str, str]):
    saved = {k: os.environ.get(k) for k in _ENV_TOUCHED}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def import_textattack():
    """Prepare (idempotent) and import textattack offline; returns the module."""
    if "textattack" in sys.modules:
        use_nltk_dir()
        return sys.modules["textattack"]
    if importlib.util.find_spec("textattack") is None:
        raise SeamError("the adv variant needs TextAttack, which is not installed; "
                        "install it with: pip install 'seam-studio[adv]'")
    paths = prepare()
    use_nltk_dir()
    overrides = {"TA_CACHE_DIR": str(paths["textattack_cache"])}
    if not os.environ.get("MPLCONFIGDIR"):
        overrides["MPLCONFIGDIR"] = str(cache_dir("matplotlib"))
    import logging

    # its import calls logging.config.dictConfig(), which disables every logger that exists by then
    before = {name: lg.disabled for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    with _restored_environ(overrides), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import textattack
    for name, disabled in before.items():
        logging.getLogger(name).disabled = disabled
    return textattack


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--check"]):
        print("usage: python -m seam.textattack_env [--check]", file=sys.stderr)
        return 2
    paths = prepare()
    print(f"NLTK data: {paths['nltk_data']} (stopwords written)")
    print(f"TextAttack cache: {paths['textattack_cache']} (marker {paths['marker'].name})")
    print(f"WordNet: {paths['wordnet'] or 'not found (synonym swaps disabled; optional: apt-get install wordnet-base wordnet-sense-index)'}")
    if args == ["--check"]:
        ta = import_textattack()
        print(f"import textattack {getattr(ta, '__version__', '')}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
