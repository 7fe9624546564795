// The on-call view (issue 15): the crisis board (open incidents by level, engaged teams red /
// yellow / grey from the matrix, pages and their state), live alerts pushed by WatchAlerts (the
// gateway's NDJSON stream, no polling), Acknowledge / Escalate, and one incident's timeline,
// updates, public statement and post-incident review.
import { ApiError, Code, RECONNECT_MS, Services, newKey, watch } from "../api.js";
import { h, replace } from "../dom.js";
import { kindLabel, translated } from "../i18n.js";

const I = Services.incident;
const LEVELS = { INCIDENT_LEVEL_A: "A", INCIDENT_LEVEL_B: "B", INCIDENT_LEVEL_C: "C" };
const LEVEL_ORDER = ["INCIDENT_LEVEL_A", "INCIDENT_LEVEL_B", "INCIDENT_LEVEL_C", "INCIDENT_LEVEL_UNSPECIFIED"];
const COLOURS = { ENGAGEMENT_RED: "red", ENGAGEMENT_YELLOW: "yellow", ENGAGEMENT_GREY: "grey" };
const ALERT_KINDS = {
  ALERT_KIND_PAGE: "page",
  ALERT_KIND_ACKNOWLEDGED: "acknowledged",
  ALERT_KIND_INFORMED: "informed",
  ALERT_KIND_RESOLVED: "resolved",
};
const TEAM_KEY = "careops.console.oncallTeam";
const REFUSED = [Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.PERMISSION_DENIED, Code.UNAUTHENTICATED];

// The incident service writes its own timeline entries in English from fixed templates (its
// domain's `evolve`); these patterns give their parts to the page's own words in either
// language. People's texts (updates, resolution summaries, reasons) are shown as written; an
// entry matching no pattern is shown as the service wrote it.
const TIMELINE = {
  declared: [/^level (\w+)$/, ["level"]],
  page: [/^paged (\S+) \((.+)\)$/, ["member", "team"]],
  informed: [/^informed (.+)$/, ["team"]],
  acknowledged: [/^(\S+) acknowledged$/, ["member"]],
  exhausted: [/^nobody in (.+) acknowledged$/, ["team"]],
  deadline_missed: [/^response deadline missed$/, []],
  reassessed: [/^(\w+) -> (\w+): (.*)$/s, ["from", "to", "reason"]],
  escalated: [/^(\w+) -> (\w+): (.*)$/s, ["from", "to", "reason"]],
  role: [/^([^:]+): (.+)$/, ["role", "member"]],
  closed: [/^post-incident review recorded$/, []],
  statement: [/^public statement v(\d+) published by (.+)$/, ["version", "by"]],
  customers_notified: [/^customers to be notified by (\S+) \(template (.+), statement v(\d+)\)$/s, ["by", "template", "version"]],
};

// One timeline entry's kind and text in the reader's language.
export function timelineEntry(entry) {
  return { kind: kindLabel("oncall.kind", entry.kind), text: translated(TIMELINE, "oncall.entry", entry.kind, entry.text) };
}

// A page's state: requested -> delivered -> acknowledged, or escalated (its wait ran out).
export function pageState(page) {
  if (page.acknowledged) return "acknowledged";
  if (page.escalated) return "escalated";
  if ((page.deliveries || []).some((delivery) => delivery.delivered)) return "delivered";
  return "requested";
}

function when(timestamp, language) {
  if (!timestamp) return "";
  return new Date(timestamp).toLocaleString(language === "zh" ? "zh-CN" : "en-GB");
}

// WatchAlerts through the gateway's NDJSON edge (api.js `watch`): onAlert per alert until the
// stream ends; throws when refused or on an error line.
function watchAlerts(teamId, afterSequence, signal, onOpen, onAlert) {
  return watch(I, "WatchAlerts", { teamId, afterSequence: String(afterSequence) }, { signal, onOpen, onMessage: onAlert });
}

export default {
  id: "oncall",
  title: "oncall.nav",
  // Responders: reading incidents (agents may) is not enough; the teams and the matrix too.
  requires: [`${I}/ListIncidents`, `${I}/GetIncident`, `${I}/WatchAlerts`, `${I}/GetTeam`, `${I}/GetResponseMatrix`],
  strings: {
    zh: {
      "oncall.nav": "值班应急",
      "oncall.title": "应急看板",
      "oncall.team": "我的团队",
      "oncall.live": "实时告警",
      "oncall.connected": "已连接，告警实时推送",
      "oncall.reconnecting": "连接中断，正在重连…",
      "oncall.refused": "无法订阅告警：{message}",
      "oncall.counts": "未结束事件：A 级 {a} · B 级 {b} · C 级 {c}",
      "oncall.none": "当前没有未结束的事件。",
      "oncall.noAlerts": "暂无告警。",
      "oncall.level": "级别",
      "oncall.incident": "事件",
      "oncall.status": "状态",
      "oncall.teams": "参与团队",
      "oncall.pages": "呼叫",
      "oncall.actions": "操作",
      "oncall.levelName": "{level} 级",
      "oncall.open": "详情",
      "oncall.acknowledge": "确认 {member}",
      "oncall.escalateTo": "升级到 {level} 级",
      "oncall.escalateReason": "升级原因",
      "oncall.escalated": "事件已升级。",
      "oncall.acknowledged": "已确认呼叫，升级已停止。",
      "oncall.engagement.red": "红（主导）",
      "oncall.engagement.yellow": "黄（支援）",
      "oncall.engagement.grey": "灰（知会）",
      "oncall.page.requested": "已发起",
      "oncall.page.delivered": "已送达",
      "oncall.page.acknowledged": "已确认",
      "oncall.page.escalated": "已升级",
      "oncall.alert.page": "呼叫",
      "oncall.alert.acknowledged": "已确认",
      "oncall.alert.informed": "知会",
      "oncall.alert.resolved": "已解决",
      "oncall.detail": "事件详情",
      "oncall.timeline": "时间线",
      "oncall.update": "发布内部进展",
      "oncall.updateMessage": "进展",
      "oncall.updateSubmit": "添加进展",
      "oncall.updated": "进展已添加。",
      "oncall.statement": "对外声明",
      "oncall.statements": "已发布的声明",
      "oncall.headline": "标题",
      "oncall.statementText": "内容",
      "oncall.publish": "发布声明",
      "oncall.published": "声明已发布。",
      "oncall.review": "事后复盘",
      "oncall.noReview": "事件关闭时填写复盘。",
      "oncall.resolve": "解决事件",
      "oncall.kind.declared": "宣布",
      "oncall.kind.page": "呼叫",
      "oncall.kind.informed": "知会",
      "oncall.kind.acknowledged": "确认",
      "oncall.kind.exhausted": "无人响应",
      "oncall.kind.deadline_missed": "超时未响应",
      "oncall.kind.reassessed": "重新评估",
      "oncall.kind.escalated": "升级",
      "oncall.kind.role": "角色",
      "oncall.kind.update": "进展",
      "oncall.kind.resolved": "解决",
      "oncall.kind.closed": "关闭",
      "oncall.kind.statement": "声明",
      "oncall.kind.customers_notified": "通知客户",
      "oncall.entry.declared": "级别 {level}",
      "oncall.entry.page": "已呼叫 {member}（{team}）",
      "oncall.entry.informed": "已知会 {team}",
      "oncall.entry.acknowledged": "{member} 已确认",
      "oncall.entry.exhausted": "{team} 无人确认",
      "oncall.entry.deadline_missed": "错过响应期限",
      "oncall.entry.reassessed": "{from} → {to}：{reason}",
      "oncall.entry.escalated": "{from} → {to}：{reason}",
      "oncall.entry.role": "{role}：{member}",
      "oncall.entry.closed": "已记录事后复盘",
      "oncall.entry.statement": "对外声明第 {version} 版由 {by} 发布",
      "oncall.entry.customers_notified": "{by} 决定通知客户（模板 {template}，声明第 {version} 版）",
      "oncall.resolveSummary": "解决摘要",
      "oncall.resolveSubmit": "标记为已解决",
      "oncall.resolvedToast": "事件已解决，请填写复盘后关闭。",
      "oncall.preventionLines": "预防措施（每行一条）",
      "oncall.closeSubmit": "提交复盘并关闭",
      "oncall.closedToast": "复盘已提交，事件已关闭。",
      "oncall.rootCause": "根本原因",
      "oncall.prevention": "预防措施",
      "oncall.knowledge": "知识库条目",
      "oncall.due": "确认期限 {at}",
      "oncall.drill": "演练",
      "oncall.status.INCIDENT_STATUS_DECLARED": "已宣布",
      "oncall.status.INCIDENT_STATUS_ACKNOWLEDGED": "已响应",
      "oncall.status.INCIDENT_STATUS_RESOLVED": "已解决",
      "oncall.status.INCIDENT_STATUS_CLOSED": "已关闭",
    },
    en: {
      "oncall.nav": "On-call",
      "oncall.title": "Crisis board",
      "oncall.team": "My team",
      "oncall.live": "Live alerts",
      "oncall.connected": "Connected: alerts are pushed live",
      "oncall.reconnecting": "Connection lost, reconnecting…",
      "oncall.refused": "Cannot watch alerts: {message}",
      "oncall.counts": "Open incidents: level A {a} · level B {b} · level C {c}",
      "oncall.none": "No open incidents.",
      "oncall.noAlerts": "No alerts yet.",
      "oncall.level": "Level",
      "oncall.incident": "Incident",
      "oncall.status": "Status",
      "oncall.teams": "Engaged teams",
      "oncall.pages": "Pages",
      "oncall.actions": "Actions",
      "oncall.levelName": "Level {level}",
      "oncall.open": "Details",
      "oncall.acknowledge": "Acknowledge {member}",
      "oncall.escalateTo": "Escalate to level {level}",
      "oncall.escalateReason": "Reason to escalate",
      "oncall.escalated": "The incident was escalated.",
      "oncall.acknowledged": "Page acknowledged: the escalation stopped.",
      "oncall.engagement.red": "red (leads)",
      "oncall.engagement.yellow": "yellow (supports)",
      "oncall.engagement.grey": "grey (informed)",
      "oncall.page.requested": "requested",
      "oncall.page.delivered": "delivered",
      "oncall.page.acknowledged": "acknowledged",
      "oncall.page.escalated": "escalated",
      "oncall.alert.page": "page",
      "oncall.alert.acknowledged": "acknowledged",
      "oncall.alert.informed": "informed",
      "oncall.alert.resolved": "resolved",
      "oncall.detail": "Incident",
      "oncall.timeline": "Timeline",
      "oncall.update": "Internal update",
      "oncall.updateMessage": "Update",
      "oncall.updateSubmit": "Add update",
      "oncall.updated": "Update added.",
      "oncall.statement": "Public statement",
      "oncall.statements": "Published statements",
      "oncall.headline": "Headline",
      "oncall.statementText": "Text",
      "oncall.publish": "Publish statement",
      "oncall.published": "Statement published.",
      "oncall.review": "Post-incident review",
      "oncall.noReview": "The review is written when the incident is closed.",
      "oncall.resolve": "Resolve the incident",
      "oncall.kind.declared": "declared",
      "oncall.kind.page": "page",
      "oncall.kind.informed": "informed",
      "oncall.kind.acknowledged": "acknowledged",
      "oncall.kind.exhausted": "nobody answered",
      "oncall.kind.deadline_missed": "deadline missed",
      "oncall.kind.reassessed": "reassessed",
      "oncall.kind.escalated": "escalated",
      "oncall.kind.role": "role",
      "oncall.kind.update": "update",
      "oncall.kind.resolved": "resolved",
      "oncall.kind.closed": "closed",
      "oncall.kind.statement": "statement",
      "oncall.kind.customers_notified": "customers notified",
      "oncall.entry.declared": "level {level}",
      "oncall.entry.page": "paged {member} ({team})",
      "oncall.entry.informed": "informed {team}",
      "oncall.entry.acknowledged": "{member} acknowledged",
      "oncall.entry.exhausted": "nobody in {team} acknowledged",
      "oncall.entry.deadline_missed": "response deadline missed",
      "oncall.entry.reassessed": "{from} → {to}: {reason}",
      "oncall.entry.escalated": "{from} → {to}: {reason}",
      "oncall.entry.role": "{role}: {member}",
      "oncall.entry.closed": "post-incident review recorded",
      "oncall.entry.statement": "public statement v{version} published by {by}",
      "oncall.entry.customers_notified": "customers to be notified by {by} (template {template}, statement v{version})",
      "oncall.resolveSummary": "Resolution summary",
      "oncall.resolveSubmit": "Mark resolved",
      "oncall.resolvedToast": "Incident resolved: write the review to close it.",
      "oncall.preventionLines": "Prevention actions (one per line)",
      "oncall.closeSubmit": "Submit the review and close",
      "oncall.closedToast": "Review submitted: the incident is closed.",
      "oncall.rootCause": "Root cause",
      "oncall.prevention": "Prevention actions",
      "oncall.knowledge": "Knowledge-base entry",
      "oncall.due": "ack due {at}",
      "oncall.drill": "drill",
      "oncall.status.INCIDENT_STATUS_DECLARED": "declared",
      "oncall.status.INCIDENT_STATUS_ACKNOWLEDGED": "acknowledged",
      "oncall.status.INCIDENT_STATUS_RESOLVED": "resolved",
      "oncall.status.INCIDENT_STATUS_CLOSED": "closed",
    },
  },

  async render(root, { call, t, can, me, toast, language, rerender }) {
    let stopped = false;
    let selected = decodeURIComponent(location.hash.split("/")[2] || "");
    const controller = new AbortController();
    const status = h("p", { id: "oncall-stream", class: "stream", role: "status" }, "");
    const board = h("div", { id: "crisis-board" });
    const counts = h("p", { id: "oncall-counts", class: "counts" });
    const alerts = h("ol", { id: "oncall-alerts", class: "alerts", "aria-live": "polite" });
    const detail = h("section", { id: "incident-detail", class: "panel", "aria-label": t("oncall.detail") });
    const teamSelect = h("select", { id: "oncall-team" });
    const seen = new Set();
    let alertCount = 0;

    const failed = (failure) => {
      if (failure instanceof ApiError && failure.code === Code.PERMISSION_DENIED) {
        toast(t("error.denied", { message: failure.message }));
      } else {
        toast(t("error.generic", { message: failure.message }));
      }
    };

    const engagementChip = (team) => {
      const colour = COLOURS[team.engagement] || "grey";
      return h(
        "li",
        { class: `engagement ${colour}`, dataset: { team: team.teamId, engagement: colour } },
        `${team.teamId}: ${t(`oncall.engagement.${colour}`)}`,
      );
    };

    const pageItem = (incident, page) => {
      const state = pageState(page);
      const mine = page.memberId === me.subject;
      const ack =
        state !== "acknowledged" && !page.escalated && mine && can(I, "AcknowledgePage")
          ? h(
              "button",
              {
                type: "button",
                onclick: async (event) => {
                  event.target.disabled = true;
                  try {
                    await call(I, "AcknowledgePage", { pageId: page.pageId }, { idempotencyKey: newKey() });
                    toast(t("oncall.acknowledged"));
                  } catch (failure) {
                    failed(failure);
                  }
                  await refresh();
                },
              },
              t("oncall.acknowledge", { member: page.memberId }),
            )
          : null;
      return h(
        "li",
        { class: `page ${state}`, dataset: { pageId: page.pageId, member: page.memberId, state } },
        h("span", {}, `${page.teamId} · ${page.memberId} · `),
        h("strong", {}, t(`oncall.page.${state}`)),
        state === "requested" || state === "delivered"
          ? h("span", { class: "due" }, ` (${t("oncall.due", { at: when(page.ackDueAt, language) })})`)
          : null,
        ack ? " " : null,
        ack,
      );
    };

    // A form was sent: empty its controls, also in a detail re-rendered (with the typed text
    // kept) while the call ran.
    const sent = (form) => {
      for (const control of form.elements) {
        const now = control.id && detail.querySelector(`#${CSS.escape(control.id)}`);
        if (now && "defaultValue" in now) now.value = now.defaultValue;
      }
      form.reset();
    };

    const OPEN = ["INCIDENT_STATUS_DECLARED", "INCIDENT_STATUS_ACKNOWLEDGED"];
    const HIGHER = { INCIDENT_LEVEL_C: "B", INCIDENT_LEVEL_B: "A" };
    // Escalate raises the level one step (C -> B -> A) and engages that level's teams.
    const escalateForm = (incident) => {
      if (!can(I, "EscalateIncident") || !OPEN.includes(incident.status) || !HIGHER[incident.level]) return null;
      const reason = h("input", { id: "oncall-escalate-reason", required: true });
      return h(
        "form",
        {
          class: "row",
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              await call(I, "EscalateIncident", { incidentId: incident.incidentId, reason: reason.value }, { idempotencyKey: newKey() });
              toast(t("oncall.escalated"));
              sent(event.target);
            } catch (failure) {
              failed(failure);
            }
            await refresh();
          },
        },
        field("oncall-escalate-reason", t("oncall.escalateReason"), reason),
        h("button", { type: "submit" }, t("oncall.escalateTo", { level: HIGHER[incident.level] })),
      );
    };

    // Resolve: an open incident, with an optional summary (ResolveIncident).
    const resolveForm = (incident) => {
      if (!can(I, "ResolveIncident") || !OPEN.includes(incident.status)) return null;
      const summary = h("textarea", { id: "oncall-resolve-summary", rows: 2 });
      return h(
        "form",
        {
          class: "stack",
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              await call(I, "ResolveIncident", { incidentId: incident.incidentId, summary: summary.value }, { idempotencyKey: newKey() });
              toast(t("oncall.resolvedToast"));
              sent(event.target);
            } catch (failure) {
              failed(failure);
            }
            await refresh();
          },
        },
        h("h3", {}, t("oncall.resolve")),
        field("oncall-resolve-summary", t("oncall.resolveSummary"), summary),
        h("button", { type: "submit" }, t("oncall.resolveSubmit")),
      );
    };

    // Close: a resolved incident, with its post-incident review (CloseIncident; the service
    // requires the root cause and at least one prevention action). Field violations are shown
    // beside the form, which keeps what was typed.
    const closeForm = (incident) => {
      if (!can(I, "CloseIncident") || incident.status !== "INCIDENT_STATUS_RESOLVED") return null;
      const rootCause = h("textarea", { id: "oncall-root-cause", rows: 2, required: true });
      const prevention = h("textarea", { id: "oncall-prevention", rows: 3, required: true });
      const knowledge = h("textarea", { id: "oncall-knowledge", rows: 2 });
      const problem = h("p", { id: "oncall-review-error", class: "error", role: "alert" });
      return h(
        "form",
        {
          class: "stack",
          onsubmit: async (event) => {
            event.preventDefault();
            problem.textContent = "";
            const review = {
              rootCause: rootCause.value,
              preventionActions: prevention.value.split("\n").map((line) => line.trim()).filter(Boolean),
              knowledgeBaseEntry: knowledge.value,
            };
            try {
              await call(I, "CloseIncident", { incidentId: incident.incidentId, review }, { idempotencyKey: newKey() });
              toast(t("oncall.closedToast"));
              sent(event.target);
            } catch (failure) {
              if (failure instanceof ApiError && failure.violations?.length) {
                problem.textContent = failure.violations.map((v) => `${v.field}: ${v.description}`).join("; ");
              } else {
                failed(failure);
              }
            }
            await refresh();
          },
        },
        field("oncall-root-cause", t("oncall.rootCause"), rootCause),
        field("oncall-prevention", t("oncall.preventionLines"), prevention),
        field("oncall-knowledge", t("oncall.knowledge"), knowledge),
        problem,
        h("button", { type: "submit" }, t("oncall.closeSubmit")),
      );
    };

    const boardRow = (incident) =>
      h(
        "tr",
        {
          class: `level-${LEVELS[incident.level] || "x"}${incident.incidentId === selected ? " selected" : ""}`,
          dataset: { incidentId: incident.incidentId, level: LEVELS[incident.level] || "" },
        },
        h("td", {}, h("span", { class: `level level-${LEVELS[incident.level] || "x"}` }, t("oncall.levelName", { level: LEVELS[incident.level] || "?" }))),
        h(
          "td",
          {},
          h("div", {}, incident.title, incident.drill ? ` (${t("oncall.drill")})` : ""),
          h("div", { class: "meta" }, `${incident.incidentId} · ${incident.type} · ${when(incident.declaredAt, language)}`),
        ),
        h("td", {}, t(`oncall.status.${incident.status}`)),
        h("td", {}, h("ul", { class: "engagements" }, (incident.teams || []).map(engagementChip))),
        h("td", {}, h("ul", { class: "pages" }, (incident.pages || []).map((page) => pageItem(incident, page)))),
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              "aria-label": `${t("oncall.open")}: ${incident.title}`,
              onclick: () => {
                // Kept in the URL (#/oncall/<id>): a re-render (language switch) keeps it. No
                // hashchange: replaceState does not route again.
                selected = incident.incidentId;
                history.replaceState(null, "", `#/oncall/${encodeURIComponent(selected)}`);
                refresh();
              },
            },
            t("oncall.open"),
          ),
        ),
      );

    let rows = new Map(); // incidentId -> {key, row}: the rows on the board
    let tbody = null;
    const renderBoard = (incidents) => {
      const count = (level) => incidents.filter((incident) => incident.level === level).length;
      counts.textContent = t("oncall.counts", {
        a: count("INCIDENT_LEVEL_A"),
        b: count("INCIDENT_LEVEL_B"),
        c: count("INCIDENT_LEVEL_C"),
      });
      if (!incidents.length) {
        replace(board, h("p", {}, t("oncall.none")));
        return;
      }
      const sorted = [...incidents].sort(
        (a, b) => LEVEL_ORDER.indexOf(a.level) - LEVEL_ORDER.indexOf(b.level) || (b.declaredAt || "").localeCompare(a.declaredAt || ""),
      );
      // A row whose incident did not change is kept, not rebuilt: every alert refreshes the
      // board, and a button replaced between the user's press and release loses the click
      // (and the focus).
      const previous = rows;
      rows = new Map();
      const wanted = sorted.map((incident) => {
        const key = `${incident.incidentId === selected}|${JSON.stringify(incident)}`;
        const kept = previous.get(incident.incidentId);
        const row = kept && kept.key === key ? kept.row : boardRow(incident);
        rows.set(incident.incidentId, { key, row });
        return row;
      });
      if (tbody && board.contains(tbody)) {
        wanted.forEach((row, index) => {
          if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
        });
        while (tbody.children.length > wanted.length) tbody.lastElementChild.remove();
        return;
      }
      tbody = h("tbody", {}, wanted);
      replace(
        board,
        h(
          "table",
          { "aria-label": t("oncall.title") },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["level", "incident", "status", "teams", "pages", "actions"].map((key) => h("th", { scope: "col" }, t(`oncall.${key}`))),
            ),
          ),
          tbody,
        ),
      );
    };

    const field = (id, label, control) => h("label", { for: id }, label, control);

    let shown = "";
    const renderDetail = (incident) => {
      if (!incident) {
        shown = "";
        replace(detail);
        detail.hidden = true;
        return;
      }
      // Re-rendered only when the incident changed: an alert does not wipe a half-typed update.
      const key = `${incident.incidentId}@${incident.version}`;
      if (key === shown) return;
      // The incident changed under the user (an update, a page, an escalation): what they were
      // typing into its forms and the control they were in survive the re-render.
      const typed = shown.startsWith(`${incident.incidentId}@`)
        ? [...detail.querySelectorAll("input[id], textarea[id]")].filter((control) => control.value !== control.defaultValue)
        : [];
      const focused = detail.contains(document.activeElement) ? document.activeElement.id : "";
      shown = key;
      detail.hidden = false;
      const message = h("textarea", { id: "oncall-update-message", rows: 2, required: true });
      const updateForm = can(I, "AddUpdate")
        ? h(
            "form",
            {
              class: "stack",
              onsubmit: async (event) => {
                event.preventDefault();
                try {
                  await call(I, "AddUpdate", { incidentId: incident.incidentId, message: message.value }, { idempotencyKey: newKey() });
                  toast(t("oncall.updated"));
                  sent(event.target);
                } catch (failure) {
                  failed(failure);
                }
                await refresh();
              },
            },
            h("h3", {}, t("oncall.update")),
            field("oncall-update-message", t("oncall.updateMessage"), message),
            h("button", { type: "submit" }, t("oncall.updateSubmit")),
          )
        : null;
      const headline = h("input", { id: "oncall-headline", required: true });
      const text = h("textarea", { id: "oncall-statement-text", rows: 3, required: true }, incident.publicStatementDraft || "");
      const statementForm = can(I, "PublishStatement")
        ? h(
            "form",
            {
              class: "stack",
              onsubmit: async (event) => {
                event.preventDefault();
                try {
                  await call(
                    I,
                    "PublishStatement",
                    { incidentId: incident.incidentId, headline: headline.value, text: text.value },
                    { idempotencyKey: newKey() },
                  );
                  toast(t("oncall.published"));
                  sent(event.target);
                } catch (failure) {
                  failed(failure);
                }
                await refresh();
              },
            },
            field("oncall-headline", t("oncall.headline"), headline),
            field("oncall-statement-text", t("oncall.statementText"), text),
            h("button", { type: "submit" }, t("oncall.publish")),
          )
        : null;
      const review = incident.review || {};
      const hasReview = review.rootCause || (review.preventionActions || []).length || review.knowledgeBaseEntry;
      replace(
        detail,
        h("h2", {}, `${incident.title} (${t("oncall.levelName", { level: LEVELS[incident.level] || "?" })})`),
        escalateForm(incident),
        resolveForm(incident),
        h(
          "div",
          { class: "oncall-detail" },
          h(
            "section",
            {},
            h("h3", {}, t("oncall.timeline")),
            h(
              "ol",
              { class: "timeline" },
              (incident.timeline || []).map((entry) => {
                const shown = timelineEntry(entry);
                return h("li", { dataset: { kind: entry.kind } }, h("span", { class: "meta" }, `${when(entry.at, language)} · ${shown.kind} `), shown.text);
              }),
            ),
          ),
          h(
            "section",
            { class: "stack" },
            updateForm,
            h("h3", {}, t("oncall.statement")),
            (incident.statements || []).length
              ? h(
                  "ul",
                  { class: "statements", "aria-label": t("oncall.statements") },
                  incident.statements.map((statement) =>
                    h("li", {}, h("strong", {}, statement.headline || ""), " ", statement.text || ""),
                  ),
                )
              : null,
            statementForm,
            h("h3", {}, t("oncall.review")),
            hasReview
              ? h(
                  "dl",
                  { class: "facts" },
                  h("dt", {}, t("oncall.rootCause")),
                  h("dd", {}, review.rootCause || ""),
                  h("dt", {}, t("oncall.prevention")),
                  h("dd", {}, (review.preventionActions || []).join("; ")),
                  h("dt", {}, t("oncall.knowledge")),
                  h("dd", {}, review.knowledgeBaseEntry || ""),
                )
              : closeForm(incident) || h("p", { class: "meta" }, t("oncall.noReview")),
          ),
        ),
      );
      for (const control of typed) {
        const now = detail.querySelector(`#${CSS.escape(control.id)}`);
        if (now) now.value = control.value;
      }
      if (focused) detail.querySelector(`#${CSS.escape(focused)}`)?.focus();
    };

    // One refresh at a time; an alert arriving during one asks for another after it.
    let running = null;
    let again = false;
    let minSequence = 0; // the last alert's position in the log
    const refresh = async () => {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        do {
          again = false;
          try {
            // Read at least up to the last alert: the alert comes from the log, the list from a
            // projection of it that may not have caught up yet (then the new incident would be
            // missing until some later alert).
            const request = { openOnly: true, includeDrills: true, pageSize: 100 };
            if (minSequence) request.minSequence = String(minSequence);
            const { incidents = [] } = await call(I, "ListIncidents", request);
            const ids = incidents.map((summary) => summary.incidentId);
            if (selected && !ids.includes(selected)) ids.push(selected);
            const full = await Promise.all(ids.map((incidentId) => call(I, "GetIncident", { incidentId })));
            if (stopped) return;
            const byId = new Map(full.map(({ incident }) => [incident.incidentId, incident]));
            renderBoard(incidents.map((summary) => byId.get(summary.incidentId)).filter(Boolean));
            renderDetail(selected ? byId.get(selected) : null);
          } catch (failure) {
            if (!stopped) failed(failure);
          }
        } while (again && !stopped);
      })();
      try {
        await running;
      } finally {
        running = null;
      }
    };

    const showAlert = (alert) => {
      const kind = ALERT_KINDS[alert.kind] || "page";
      if (alertCount === 0) replace(alerts);
      alertCount += 1;
      alerts.prepend(
        h(
          "li",
          { class: `alert ${kind}`, dataset: { incidentId: alert.incidentId, kind } },
          h("span", { class: "meta" }, `${when(alert.at, language)} `),
          h("strong", {}, t(`oncall.alert.${kind}`)),
          ` ${LEVELS[alert.level] ? t("oncall.levelName", { level: LEVELS[alert.level] }) : ""} ${alert.title} · ${alert.teamId}${alert.memberId ? ` · ${alert.memberId}` : ""}`,
        ),
      );
    };

    // The live stream: resumes after a drop from the last alert's sequence minus one (one event
    // may carry several alerts: those already seen are skipped), with a growing pause.
    const stream = async (teamId) => {
      let after = 0;
      let attempt = 0;
      while (!stopped) {
        try {
          await watchAlerts(
            teamId,
            after,
            controller.signal,
            () => {
              attempt = 0;
              status.textContent = t("oncall.connected");
              status.dataset.state = "connected";
            },
            (alert) => {
              const sequence = Number(alert.sequence || 0);
              const key = `${sequence}/${alert.kind}/${alert.pageId}/${alert.teamId}/${alert.memberId}/${alert.incidentId}`;
              if (sequence) after = Math.max(after, sequence - 1);
              if (seen.has(key)) return;
              seen.add(key);
              minSequence = Math.max(minSequence, sequence);
              showAlert(alert);
              refresh();
            },
          );
        } catch (failure) {
          if (stopped) return;
          // Refused (not a drop): retrying would not help; say why and stop.
          if (failure instanceof ApiError && REFUSED.includes(failure.code)) {
            status.textContent = t("oncall.refused", { message: failure.message });
            status.dataset.state = "refused";
            return;
          }
        }
        if (stopped) return;
        status.textContent = t("oncall.reconnecting");
        status.dataset.state = "reconnecting";
        const pause = RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)];
        attempt += 1;
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    };

    // The teams to watch: those of the matrix; mine (a member) first.
    let teams = [];
    try {
      const { matrix } = await call(I, "GetResponseMatrix", {});
      teams = [...new Set((matrix?.rows || []).flatMap((row) => row.cells.map((cell) => cell.teamId)))].sort();
    } catch (failure) {
      failed(failure);
    }
    let team = sessionStorage.getItem(TEAM_KEY) || "";
    if (!team) {
      for (const teamId of teams) {
        try {
          const { team: found } = await call(I, "GetTeam", { teamId });
          if ((found.members || []).some((member) => member.memberId === me.subject)) {
            team = teamId;
            break;
          }
        } catch {
          // a team of the matrix not defined: not mine
        }
      }
    }
    team = team || teams[0] || "";
    for (const teamId of teams) teamSelect.append(h("option", { value: teamId, selected: teamId === team }, teamId));
    teamSelect.addEventListener("change", () => {
      sessionStorage.setItem(TEAM_KEY, teamSelect.value);
      rerender();
    });

    replace(
      root,
      h("h1", {}, t("oncall.title")),
      h("div", { class: "oncall-grid" },
        h("section", { class: "board", "aria-label": t("oncall.title") }, counts, board),
        h(
          "aside",
          { class: "panel", "aria-label": t("oncall.live") },
          h("h2", {}, t("oncall.live")),
          field("oncall-team", t("oncall.team"), teamSelect),
          status,
          alerts,
        ),
      ),
      detail,
    );
    replace(alerts, h("li", { class: "meta" }, t("oncall.noAlerts")));
    detail.hidden = true;
    await refresh();
    if (team) stream(team);
    return () => {
      stopped = true;
      controller.abort();
    };
  },
};
