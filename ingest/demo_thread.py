"""The demo generator's threads: tool calls (with results and subagent transcripts),
answers, and whole sessions (turns, slash commands, compactions, warmups)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .demo_records import _Records, _Shared, _Writer  # noqa: F401
from .demo_words import (
    AGENT_MODEL,
    ANSWER_OPENERS,
    BASH_COMMANDS,
    DEPS,
    ERRORS,
    FOLLOW_UPS,
    IDENTS,
    MODULES,
    PROMPTS,
    SENTENCES,
    SLASH_COMMANDS,
    SUBAGENT_PROMPTS,
    TITLES,
    iso,
)


class _Thread(_Records):
    """A transcript thread: tool calls and their results, subagents, answers."""

    def tool_call(self, name: str) -> tuple[dict[str, Any], Callable[[], tuple[Any, Any, bool]]]:
        """A tool_use block and a function that runs the tool: (content, toolUseResult, error)."""
        r = self.rng
        tid = self.b62("toolu_01", 22)
        p = self.project
        error = r.random() < 0.06
        path = p["cwd"] + "/" + r.choice(p["files"])

        if name == "Read":
            inp: dict[str, Any] = {"file_path": path}

            def run():
                if error:
                    msg = r.choice(
                        ("File does not exist.", "EISDIR: illegal operation on a directory, read")
                    )
                    return msg, "Error: " + msg, True
                mix = self.s.mix
                big = min(2_500_000, self.budget // 3)
                if big > 250_000 and r.random() < mix.big_read_p:
                    size = r.randint(250_000, big)
                else:
                    size = self.lognormal(mix.read_median, 1.1, mix.read_cap)
                lines = self.code_lines(size)
                body = "\n".join(lines)
                numbered = "\n".join(f"{i:>6}→{line}" for i, line in enumerate(lines, 1))
                result = {
                    "type": "text",
                    "file": {
                        "filePath": path,
                        "content": body,
                        "numLines": len(lines),
                        "startLine": 1,
                        "totalLines": len(lines),
                    },
                }
                return numbered, result, False

        elif name == "Bash":
            cmd, desc = r.choice(BASH_COMMANDS)
            cmd = self.fill(cmd)
            inp = {"command": cmd, "description": desc}

            def run():
                if error:
                    out = f"Exit code 1\n{self.fill(r.choice(ERRORS))}\n" + self.prose(1)
                    return out, "Error: " + out, True
                out = self.bash_output(cmd)
                result = {"stdout": out, "stderr": "", "interrupted": False, "isImage": False}
                if self.v >= (2, 1):
                    result["noOutputExpected"] = False
                return out, result, False

        elif name == "Edit":
            lo, hi = self.s.mix.edit_lines
            old = "\n".join(self.code_lines(r.randint(lo, hi)))
            new = "\n".join(self.code_lines(r.randint(lo, hi + hi // 4)))
            inp = {"file_path": path, "old_string": old, "new_string": new}

            def run():
                if error:
                    msg = "String to replace not found in file."
                    return f"<tool_use_error>{msg}</tool_use_error>", "Error: " + msg, True
                original = "\n".join(
                    self.code_lines(self.lognormal(self.s.mix.edit_original_median, 1.0, 80_000))
                )
                out = f"The file {path} has been updated. Here's the result of running `cat -n` on a snippet of the edited file:\n"
                out += "\n".join(f"{i:>6}→{line}" for i, line in enumerate(new.split("\n"), 40))
                n_old, n_new = old.count("\n") + 1, new.count("\n") + 1
                patch = [
                    {
                        "oldStart": 40,
                        "oldLines": n_old,
                        "newStart": 40,
                        "newLines": n_new,
                        "lines": ["-" + x for x in old.split("\n")]
                        + ["+" + x for x in new.split("\n")],
                    }
                ]
                result = {
                    "filePath": path,
                    "oldString": old,
                    "newString": new,
                    "originalFile": original,
                    "structuredPatch": patch,
                    "userModified": False,
                    "replaceAll": False,
                }
                return out, result, False

        elif name == "Write":
            content = "\n".join(
                self.code_lines(self.lognormal(self.s.mix.write_median, 0.8, 40_000))
            )
            inp = {"file_path": path, "content": content}

            def run():
                if error:
                    msg = "File has not been read yet. Read it first before writing to it."
                    return f"<tool_use_error>{msg}</tool_use_error>", "Error: " + msg, True
                out = f"File created successfully at: {path}"
                return (
                    out,
                    {"type": "create", "filePath": path, "content": content, "structuredPatch": []},
                    False,
                )

        elif name == "Grep":
            pattern = r.choice(IDENTS) + r.choice(("", "_id", "\\(", "Error"))
            inp = {"pattern": pattern, "path": p["cwd"], "output_mode": "content", "-n": True}

            def run():
                hits = [
                    f"{p['cwd']}/{r.choice(p['files'])}:{r.randint(1, 400)}:{line.strip()}"
                    for line in self.code_lines(self.lognormal(self.s.mix.grep_median, 1.0, 20_000))
                ]
                out = "\n".join(hits)
                files = sorted({h.split(":")[0] for h in hits})
                return (
                    out,
                    {
                        "mode": "content",
                        "numFiles": len(files),
                        "filenames": [],
                        "content": out,
                        "numLines": len(hits),
                    },
                    False,
                )

        elif name == "Glob":
            ext = ".py" if p["lang"] == "py" else ".ts"
            inp = {"pattern": f"**/*{ext}"}

            def run():
                names = [p["cwd"] + "/" + f for f in p["files"] if f.endswith(ext)]
                return (
                    "\n".join(names),
                    {
                        "filenames": names,
                        "durationMs": r.randint(3, 90),
                        "numFiles": len(names),
                        "truncated": False,
                    },
                    False,
                )

        elif name == "TodoWrite":
            todos = [
                {
                    "content": self.fill(t),
                    "status": s,
                    "activeForm": self.fill(t).replace("Add", "Adding"),
                }
                for t, s in zip(
                    (
                        "Add {feature}",
                        "Fix {thing}",
                        "Write tests for {module}",
                        "Update docs for {feature}",
                    ),
                    ("completed", "in_progress", "pending", "pending"),
                    strict=True,
                )
            ][: r.randint(2, 4)]
            inp = {"todos": todos}

            def run():
                out = "Todos have been modified successfully. Ensure that you continue to use the todo list to track your progress. Please proceed with the current tasks if applicable"
                return out, {"oldTodos": [], "newTodos": todos}, False

        elif name == "WebFetch":
            url = f"https://docs.example.com/{r.choice(DEPS)}/{r.choice(MODULES)}"
            inp = {"url": url, "prompt": self.fill("How does {dep} handle {thing}?")}

            def run():
                if error:
                    msg = "Request failed with status code 404"
                    return msg, "Error: " + msg, True
                text = (
                    "# "
                    + self.fill("{dep}")
                    + "\n\n"
                    + "\n\n".join(self.prose(4) for _ in range(r.randint(2, 8)))
                )
                return (
                    text,
                    {
                        "bytes": r.randint(20_000, 500_000),
                        "code": 200,
                        "codeText": "OK",
                        "result": text,
                        "durationMs": r.randint(800, 9000),
                        "url": url,
                    },
                    False,
                )

        elif name in ("Task", "Agent"):
            agent_type = r.choice(("Explore", "Explore", "general-purpose", "Plan"))
            inp = {
                "description": self.fill(
                    r.choice(("Explore {module} module", "Review {file}", "Map {thing}"))
                ),
                "prompt": self.fill(r.choice(SUBAGENT_PROMPTS)) + "\n\n" + self.prose(3),
                "subagent_type": agent_type,
            }

            def run():
                return self.run_subagent(tid, inp)

        else:  # an MCP tool
            inp = {"owner": "acme", "repo": "acme-web", "issue_number": r.randint(10, 900)}

            def run():
                text = orjson.dumps(
                    {
                        "title": self.fill("{thing_cap} regression"),
                        "state": "open",
                        "body": self.prose(3),
                    }
                ).decode()
                return [{"type": "text", "text": text}], [{"type": "text", "text": text}], False

        block = {"type": "tool_use", "id": tid, "name": name, "input": inp}
        if self.v >= (2, 1, 17):
            block["caller"] = {"type": "direct"}
        return block, run

    def bash_output(self, cmd: str) -> str:
        r = self.rng
        p = self.project
        mix = self.s.mix
        if mix.bash_log_p and r.random() < mix.bash_log_p:
            return "\n".join(self.code_lines(self.lognormal(mix.bash_median, 1.0, mix.bash_cap)))
        if cmd.startswith("pytest"):
            n = r.randint(4, 300)
            return "." * min(n, 80) + f"\n{n} passed in {r.uniform(0.2, 40):.2f}s"
        if cmd.startswith("git status"):
            files = "\n".join(
                f"\tmodified:   {r.choice(p['files'])}" for _ in range(r.randint(1, 5))
            )
            return f"On branch {self.branch or 'main'}\nChanges not staged for commit:\n{files}"
        if cmd.startswith("git log"):
            return "\n".join(
                f"{r.getrandbits(28):07x} {self.fill(r.choice(TITLES))}" for _ in range(10)
            )
        if cmd.startswith("ls"):
            return "total 48\n" + "\n".join(
                f"-rw-r--r--  1 maya  staff  {r.randint(200, 40000):>6} Nov  3 10:{r.randint(10, 59)} {f.rsplit('/', 1)[-1]}"
                for f in r.sample(p["files"], min(8, len(p["files"])))
            )
        if cmd.startswith("npm test"):
            return f" ✓ {r.randint(10, 200)} tests passed ({r.uniform(1, 20):.1f}s)"
        if cmd.startswith("ruff"):
            return "All checks passed!\n42 files already formatted"
        return "\n".join(self.code_lines(self.lognormal(mix.bash_median, 1.0, mix.bash_cap)))

    def run_subagent(self, tool_use_id: str, inp: dict[str, Any]) -> tuple[Any, Any, bool]:
        """Write the subagent's transcript and return the parent's tool_result."""
        r = self.rng
        s = self.s
        if self.v >= (2, 1, 100):
            agent_id = "a" + f"{r.getrandbits(64):016x}"
        elif self.v >= (2, 1):
            agent_id = "a" + f"{r.getrandbits(24):06x}"
        else:
            agent_id = f"{r.getrandbits(32):08x}"
        project_dir = s.root / self.project["dir"]
        if self.v >= (2, 1):
            base = project_dir / self.session_id / "subagents" / f"agent-{agent_id}"
            path = base.with_name(base.name + ".jsonl")
            meta = {"agentType": inp["subagent_type"], "description": inp["description"]}
            meta_path = base.with_name(base.name + ".meta.json")
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            meta_bytes = orjson.dumps(meta)
            meta_path.write_bytes(meta_bytes)
            s.files += 1
            s.wrote(len(meta_bytes))
            self.budget -= len(meta_bytes)
        else:
            path = project_dir / f"agent-{agent_id}.jsonl"
            meta_path = None
        s.subagents += 1
        model = AGENT_MODEL if inp["subagent_type"] == "Explore" else self.model
        writer = _Writer(s, path)
        agent = _Thread(
            s,
            writer,
            project=self.project,
            session_id=self.session_id,
            version=self.version,
            model=model,
            t=self.t,
            t_end=self.t_end,
            branch=self.branch,
            slug=self.slug,
            agent_id=agent_id,
        )
        agent.budget = min(self.budget // 2, self.lognormal(40_000, 1.0, 600_000))
        start = agent.t
        agent.user(inp["prompt"])
        while True:
            done = agent.budget <= 0 or agent.tool_uses >= 40
            agent.call(s.mix.tools_agent, final=done)
            if done:
                break
        writer.close()
        if meta_path is not None:
            os.utime(meta_path, (start, start))
        self.budget -= writer.bytes
        self.t = agent.t
        report = agent.final_text
        duration = int((agent.t - start) * 1000)
        total = agent.ctx + agent.output_tokens
        content = [{"type": "text", "text": report}]
        if self.v >= (2, 1, 100):
            content.append(
                {
                    "type": "text",
                    "text": f"agentId: {agent_id} (use SendMessage with to: '{agent_id}' to continue this agent)\n"
                    f"<usage>total_tokens: {total}\ntool_uses: {agent.tool_uses}\nduration_ms: {duration}</usage>",
                }
            )
        elif self.v >= (2, 1):
            content.append(
                {
                    "type": "text",
                    "text": f"agentId: {agent_id} (for resuming to continue this agent's work if needed)",
                }
            )
        result = {
            "status": "completed",
            "prompt": inp["prompt"],
            "agentId": agent_id,
            "content": [{"type": "text", "text": report}],
            "totalDurationMs": duration,
            "totalTokens": total,
            "totalToolUseCount": agent.tool_uses,
            "usage": agent.usage(agent.output_tokens, True),
        }
        if self.v >= (2, 1):
            result["agentType"] = inp["subagent_type"]
        return content, result, False

    # -- conversation steps ----------------------------------------------------------

    def call(self, tools: Sequence[tuple[str, int]], final: bool) -> None:
        """One API call: thinking/text/tool_use lines, then the tool results."""
        r = self.rng
        blocks: list[dict[str, Any]] = []
        mix = self.s.mix
        if r.random() < mix.thinking_p:
            sig = self.b64(r.randint(*mix.signature))
            thinking = self.prose(r.randint(*mix.thinking_sentences))
            blocks.append({"type": "thinking", "thinking": thinking, "signature": sig})
        if final:
            self.final_text = self.answer()
            blocks.append({"type": "text", "text": self.final_text})
            self.assistant(blocks, "end_turn")
            return
        if r.random() < 0.5:
            blocks.append({"type": "text", "text": self.fill(r.choice(ANSWER_OPENERS))})
        names, weights = zip(*tools, strict=True)
        calls = []
        for _ in range(1 if r.random() < 0.75 else r.randint(2, 3)):
            name = r.choices(names, weights)[0]
            if name == "Task" and self.v >= (2, 1, 100):
                name = "Agent"
            block, run = self.tool_call(name)
            blocks.append(block)
            calls.append((block, run))
        line_uuids = self.assistant(blocks, "tool_use")
        carrier = line_uuids[-1]
        hooks = self.project["hooks"] and self.v >= (2, 1)
        for block, run in calls:
            content, result, is_error = run()
            self.tool_uses += 1
            self.tick(0.1, 25.0)
            if hooks:
                self.progress_hook(
                    "PostToolUse", "PostToolUse:" + block["name"], block["id"], carrier
                )
            tr: dict[str, Any] = {
                "tool_use_id": block["id"],
                "type": "tool_result",
                "content": content,
            }
            if is_error or r.random() < 0.5:
                tr["is_error"] = is_error
            extra: dict[str, Any] = {"toolUseResult": result}
            if self.v >= (2, 1, 17):
                extra["sourceToolAssistantUUID"] = carrier
            self.user([tr], **extra)
            self.ctx += min(len(str(content)) // 4, 25_000)

    def answer(self) -> str:
        r = self.rng
        kind = r.random()
        if kind < 0.35:
            return self.prose(r.randint(1, 3))
        p = self.project
        bullets = "\n".join(
            f"- **{r.choice(p['files'])}**: {self.fill(r.choice(SENTENCES))}"
            for _ in range(r.randint(2, 6))
        )
        text = f"{self.fill(r.choice(TITLES))}: done.\n\n## What changed\n\n{bullets}\n\n{self.prose(2)}"
        if kind > 0.7:
            lang = "python" if p["lang"] == "py" else "typescript"
            text += f"\n\n```{lang}\n" + "\n".join(self.code_lines(r.randint(200, 1500))) + "\n```"
        return text


class _Session(_Thread):
    """The main thread of one session file, with the records around the conversation."""

    def run(self, target: int, *, force_task: bool, resume_of: list[dict] | None) -> None:
        self.s.sessions += 1
        r = self.rng
        s = self.s
        self.budget = target
        pdir = self.project["dir"]
        leaves = s.leaves.setdefault(pdir, [])
        v21 = self.v >= (2, 1)
        if resume_of:
            self.replay_ok = False
            for rec in resume_of:
                rec = dict(rec)
                if "sessionId" in rec:
                    rec["sessionId"] = self.session_id
                self.emit(rec)
        if not v21 and leaves and s.want("summary", 0.5):
            for _ in range(r.randint(1, 3)):
                leaf = r.choice(leaves) if r.random() < 0.8 else self.uuid()
                self.meta("summary", summary=self.fill(r.choice(TITLES)), leafUuid=leaf)
        if self.v >= (2, 1, 100):
            self.meta("permission-mode", permissionMode="default", sessionId=self.session_id)
        if v21:
            self.meta(
                "queue-operation",
                operation="dequeue",
                timestamp=iso(self.t),
                sessionId=self.session_id,
            )
            if self.project["hooks"] and not resume_of:
                self.progress_hook("SessionStart", "SessionStart:startup", self.uuid(), None)
        elif self.v < (2, 0, 50) and s.want("warmup", 0.3):
            self.warmup()
        turn = 0
        while self.budget > 0 or turn == 0:
            self.turn(force_task=force_task and turn == 0, first=turn == 0)
            turn += 1
            if self.replay_ok:
                self.replay_turns = len(self.replay)
            if v21 and turn == 1 and r.random() < 0.7:
                self.meta(
                    "ai-title", aiTitle=self.fill(r.choice(TITLES)), sessionId=self.session_id
                )
            if self.ctx > 155_000 or (turn % 9 == 3 and s.want("compact", 0.3)):
                self.compact(auto=self.ctx > 155_000)
        if v21 and s.want("custom-title", 0.12):
            self.meta(
                "custom-title", customTitle=self.fill(r.choice(TITLES)), sessionId=self.session_id
            )
        if self.v >= (2, 1, 100):
            self.meta("last-prompt", lastPrompt=self.last_prompt, sessionId=self.session_id)
        leaves.append(self.last)
        del leaves[:-20]
        if self.replay_turns:
            kept = s.replayable.setdefault(pdir, [])
            kept.append((self.replay[: self.replay_turns], self.t))
            del kept[:-3]

    def turn(self, force_task: bool, first: bool) -> None:
        r = self.rng
        if not first:
            self.tick(20, 1500)
        roll = r.random()
        if not first and (roll < 0.04 or "slash" not in self.s.shown):
            self.s.shown.add("slash")
            self.slash_command()
            return
        if force_task:
            prompt: Any = self.fill(r.choice(SUBAGENT_PROMPTS))
        else:
            prompt = self.fill(r.choice(FOLLOW_UPS if not first and r.random() < 0.3 else PROMPTS))
        self.last_prompt = prompt
        image_p = self.s.mix.image_p
        if image_p and self.budget > 60_000 and (roll > 1 - image_p or "image" not in self.s.shown):
            self.s.shown.add("image")
            size = max(20_000, self.lognormal(150_000, 1.0, min(1_500_000, self.budget // 2)))
            prompt = [
                {"type": "text", "text": prompt + " (see the screenshot)"},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": "iVBORw0KGgoAAAANSUhEUgAA" + self.b64(size),
                    },
                },
            ]
        prompt_uuid = self.uuid()
        if self.v >= (2, 0):
            backups = {}
            for f in r.sample(self.project["files"], r.randint(0, 3)):
                version = r.randint(1, 4)
                backups[self.cwd + "/" + f] = {
                    "backupFileName": f"{r.getrandbits(64):016x}@v{version}",
                    "version": version,
                    "backupTime": iso(self.t),
                }
            snap = {
                "messageId": prompt_uuid,
                "trackedFileBackups": backups,
                "timestamp": iso(self.t),
            }
            self.meta(
                "file-history-snapshot",
                messageId=prompt_uuid,
                snapshot=snap,
                isSnapshotUpdate=False,
            )
        rec = self.envelope(self.last)
        rec["type"] = "user"
        rec["message"] = {"role": "user", "content": prompt}
        rec["uuid"] = prompt_uuid
        rec["timestamp"] = self.tick(0.5, 5)
        if self.v < (2, 1, 100):
            rec["thinkingMetadata"] = {"maxThinkingTokens": 31999}
            rec["todos"] = []
        if self.v >= (2, 1, 17):
            rec["permissionMode"] = "default"
        if self.v >= (2, 1, 100):
            rec["promptId"] = self.uuid()
            rec["entrypoint"] = "cli"
        self.emit(rec)
        if self.project["hooks"] and self.v >= (2, 1):
            att = self.envelope(self.last)
            att["type"] = "attachment"
            att["attachment"] = {
                "type": "hook_additional_context",
                "hookEvent": "UserPromptSubmit",
                "hookName": "UserPromptSubmit",
                "toolUseID": "UserPromptSubmit",
                "content": [f"branch: {self.branch or 'main'}", f"open todos: {r.randint(0, 6)}"],
            }
            att["uuid"] = self.uuid()
            att["timestamp"] = self.tick(0.01, 0.1)
            self.emit(att)
        n_calls = 1 + min(int(r.expovariate(1 / self.s.mix.calls_mean)), 25)
        if force_task:
            name = "Agent" if self.v >= (2, 1, 100) else "Task"
            self.call([(name, 1)], final=False)
        for i in range(n_calls):
            final = i == n_calls - 1 or self.budget <= 0
            if not final and self.v >= (2, 0, 37) and r.random() < 0.03:
                queued = self.fill(r.choice(PROMPTS))
                self.meta(
                    "queue-operation",
                    operation="enqueue",
                    timestamp=iso(self.t),
                    sessionId=self.session_id,
                    content=queued,
                )
                self.meta(
                    "queue-operation",
                    operation="remove",
                    timestamp=iso(self.t + 2),
                    sessionId=self.session_id,
                )
            if not final and i > 0 and self.s.want("interrupt", 0.01):
                self.user("[Request interrupted by user]")
                if self.s.want("synthetic", 0.5):
                    self.synthetic("No response requested.")
                return
            if not final and r.random() < 0.004:
                self.synthetic(
                    'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
                    isApiErrorMessage=True,
                )
            self.call(self.s.mix.tools_main, final=final)
            if final:
                break
        if self.v >= (2, 1) and r.random() < 0.5:
            self.system(
                "turn_duration",
                self.last,
                durationMs=r.randint(3000, 600_000),
                messageCount=n_calls * 3,
                isMeta=False,
            )

    def slash_command(self) -> None:
        r = self.rng
        name, args, out = r.choice(SLASH_COMMANDS)
        caveat = (
            "Caveat: The messages below were generated by the user while running local commands. "
            "DO NOT respond to these messages or otherwise consider them in your response unless "
            "the user explicitly asks you to."
        )
        self.user(caveat, isMeta=True)
        self.user(
            f"<command-name>/{name}</command-name>\n<command-message>{name}</command-message>\n<command-args>{args}</command-args>"
        )
        self.user(f"<local-command-stdout>{out}</local-command-stdout>")
        if name == "model":
            self.model = (
                "claude-opus-4-5-20251101" if self.v >= (2, 1) else "claude-opus-4-1-20250805"
            )

    def compact(self, auto: bool) -> None:
        r = self.rng
        pre = self.ctx
        boundary = self.system(
            "compact_boundary",
            None,
            content="Conversation compacted",
            isMeta=False,
            level="info",
            logicalParentUuid=self.last,
            compactMetadata={"trigger": "auto" if auto else "manual", "preTokens": pre},
        )
        self.last = boundary
        summary = (
            "This session is being continued from a previous conversation that ran out of context. "
            "The conversation is summarized below:\n\nAnalysis:\n"
            + "\n".join(f"{i}. {self.prose(2)}" for i in range(1, r.randint(4, 9)))
            + "\n\nPending Tasks:\n- "
            + self.fill("{feature}")
        )
        self.user(summary, isCompactSummary=True, isVisibleInTranscriptOnly=True)
        self.ctx = r.randint(12_000, 30_000)

    def warmup(self) -> None:
        """A 2.0.x 'Warmup' subagent file: one prompt, one short answer."""
        r = self.rng
        s = self.s
        agent_id = f"{r.getrandbits(32):08x}"
        writer = _Writer(s, s.root / self.project["dir"] / f"agent-{agent_id}.jsonl")
        agent = _Thread(
            s, writer, project=self.project, session_id=self.session_id, version=self.version,
            model=AGENT_MODEL, t=self.t, t_end=self.t_end, branch=self.branch, slug=self.slug,
            agent_id=agent_id,
        )  # fmt: skip
        agent.user("Warmup")
        agent.assistant(
            [{"type": "text", "text": "I'm ready to help you explore the codebase."}], "end_turn"
        )
        writer.close()
        s.subagents += 1
        self.budget -= writer.bytes
