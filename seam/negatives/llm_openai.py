"""`openai` backend: the paper's prompt against any OpenAI-compatible chat-completions endpoint.

* Endpoint, model and key: ``base_url`` / ``model`` from the config or ``$OPENAI_BASE_URL`` /
  ``$OPENAI_MODEL``; the key only from the environment variable named by ``api_key_env``
  (default ``OPENAI_API_KEY``). The key is handed to the client and nowhere else: not in the
  cache, the output, the stats or any message.
* ``concurrency`` requests in flight (threads over the thread-safe client).
* Retries are the ``openai`` client's own (``max_retries`` and ``timeout`` configure it): HTTP 408,
  409, 429, 5xx, timeouts and connection errors, with exponential backoff and jitter (0.5 s
  doubling to 8 s) and ``Retry-After`` / ``retry-after-ms`` honoured (up to two minutes). The
  client's HTTP layer counts every attempt and its outcome for the stats; nothing here sleeps.
  401/403/404 stop the run with one clear error; 400/422 (e.g. a prompt too long for the model)
  fail only that instruction, which is counted.
* Replies are cached by (model, request, round) in `ReplyCache`: a re-run makes no request.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from ..errors import SeamError
from .prompting import paper_messages, split_answers
from .reply_cache import ReplyCache, reply_key

_PLACEHOLDER_KEY = "sk-no-key-needed"  # many local OpenAI-compatible servers accept any key


class _Fatal(Exception):
    pass


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg, client=None):
        self.cfg = cfg
        self.model_name = cfg.model or os.environ.get("OPENAI_MODEL")
        if not self.model_name:
            raise SeamError("--backend openai needs a model name: pass --model NAME or set OPENAI_MODEL")
        self.base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = os.environ.get(cfg.api_key_env)
        if not key:
            if self.base_url is None:
                raise SeamError(f"--backend openai: ${cfg.api_key_env} is not set; export your API key in it "
                                "(or pass --base-url for a local OpenAI-compatible server that needs no key)")
            key = _PLACEHOLDER_KEY
        self._client = client or self._make_client(key)
        self.cache = ReplyCache() if cfg.cache else None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._local = threading.local()  # attempts of the request this thread is making
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "failed": 0,
                      "errors": {"429": 0, "5xx": 0, "timeout": 0, "connection": 0, "other": 0},
                      "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}

    def _make_client(self, key: str):
        from openai import OpenAI

        kwargs = {"api_key": key, "timeout": self.cfg.timeout, "max_retries": self.cfg.max_retries,
                  "http_client": _counting_http_client(self)}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return OpenAI(**kwargs)

    def _attempt(self) -> None:
        """Called by the HTTP layer before each attempt (the first and every retry)."""
        if self._stop.is_set():  # another request hit a fatal error: send nothing more
            raise _Fatal()
        self._bump("requests")
        self._local.attempts = getattr(self._local, "attempts", 0) + 1

    def _bump(self, field: str, n: int = 1, sub: str | None = None) -> None:
        with self._lock:
            if sub is None:
                self.stats[field] += n
            else:
                self.stats[field][sub] += n

    # ------------------------------------------------------------------ one request (the client retries)

    def _request(self, messages: list[dict]) -> tuple[str, dict]:
        import openai

        cfg = self.cfg
        if self._stop.is_set():
            raise _Fatal()
        self._local.attempts = 0
        try:
            resp = self._client.chat.completions.create(
                model=self.model_name, messages=messages, temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise SeamError(f"the endpoint refused the API key (HTTP {exc.status_code}); check ${cfg.api_key_env} "
                            f"and --base-url {self.base_url or 'default'}") from None
        except openai.NotFoundError:
            raise SeamError(f"HTTP 404 from {self.base_url or 'the OpenAI API'}: model {self.model_name!r} or the "
                            "chat-completions route does not exist there; check --model and --base-url "
                            "(it usually ends in /v1)") from None
        except openai.APITimeoutError:
            raise _RowFailed(f"timeout after {self._local.attempts} attempts") from None
        except openai.APIConnectionError:
            raise _RowFailed(f"connection error after {self._local.attempts} attempts") from None
        except openai.APIStatusError as exc:  # 400/422 at once; 408/409/429/5xx once the retries are spent
            raise _RowFailed(f"HTTP {exc.status_code} after {self._local.attempts} attempts") from None
        finally:
            if self._local.attempts > 1:
                self._bump("retries", self._local.attempts - 1)
        content = (resp.choices[0].message.content or "") if resp.choices else ""
        u = resp.usage
        usage = {"prompt_tokens": int(getattr(u, "prompt_tokens", 0) or 0),
                 "completion_tokens": int(getattr(u, "completion_tokens", 0) or 0)}
        return content, usage

    def _one(self, row, round_: int) -> list[tuple[str, dict]]:
        cfg = self.cfg
        q, a = row.prompt[:cfg.max_prompt_chars], row.chosen[:cfg.max_prompt_chars]
        messages = paper_messages(q, a, cfg.k)
        request = {"messages": messages, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "round": round_}
        key = reply_key(self.model_name, request)
        record = self.cache.get(key) if self.cache else None
        cached = record is not None
        if cached:
            self._bump("cache_hits")
            self._bump("cached_tokens", record.get("usage", {}).get("prompt_tokens", 0)
                       + record.get("usage", {}).get("completion_tokens", 0))
        else:
            content, usage = self._request(messages)
            self._bump("prompt_tokens", usage["prompt_tokens"])
            self._bump("completion_tokens", usage["completion_tokens"])
            record = {"model": self.model_name, "content": content, "usage": usage, "created": time.time()}
            if self.cache:
                self.cache.put(key, record)
        meta = {"backend": "openai", "model": self.model_name, "round": round_, "cached": cached}
        return [(text, dict(meta, index=j)) for j, text in enumerate(split_answers(record["content"]))]

    def propose(self, rows, need, round_, progress):
        out: list[list] = [[] for _ in rows]
        todo = [i for i, n in enumerate(need) if n > 0]
        done = failed = 0
        fatal = None
        pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="seam-llm")
        try:
            futures = {pool.submit(self._one, rows[i], round_): i for i in todo}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    out[i] = fut.result()
                except _RowFailed:
                    self._bump("failed")
                    failed += 1
                except _Fatal:
                    pass
                except SeamError as exc:
                    if fatal is None:
                        fatal = exc
                        self._stop.set()
                done += 1
                if progress:
                    progress(done, len(todo), f"llm round {round_ + 1}")
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self._stop.clear()
        if fatal is not None:
            raise fatal
        if todo and failed == len(todo):
            raise SeamError(f"every request to {self.base_url or 'the OpenAI API'} failed "
                            f"(errors: {', '.join(f'{k} {v}' for k, v in self.stats['errors'].items() if v) or 'HTTP 4xx'}); "
                            "check that the server is up, --base-url and --model, or raise --timeout / --max-retries")
        return out


class _RowFailed(Exception):
    pass


def _counting_http_client(backend: OpenAIBackend):
    """The ``openai`` client's own HTTP client (its defaults: connection limits, redirects), counting each
    attempt for the backend's stats: the client retries inside ``create``, out of our sight otherwise."""
    from openai import DefaultHttpxClient

    try:
        from httpx2 import TimeoutException  # the HTTP library of the pinned openai release
    except ImportError:  # older openai releases are built on httpx
        from httpx import TimeoutException

    class CountingClient(DefaultHttpxClient):
        def send(self, request, **kwargs):
            backend._attempt()
            try:
                response = super().send(request, **kwargs)
            except TimeoutException:
                backend._bump("errors", sub="timeout")
                raise
            except Exception:
                backend._bump("errors", sub="connection")
                raise
            code = response.status_code
            if code == 429:
                backend._bump("errors", sub="429")
            elif code >= 500:
                backend._bump("errors", sub="5xx")
            elif code in (408, 409):
                backend._bump("errors", sub="other")
            return response

    return CountingClient()
