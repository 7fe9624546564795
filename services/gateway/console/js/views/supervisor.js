// The supervisor view (issue 15): the live KPI board with its trends, the SLA risk list,
// follow-ups due, compensation approvals, agents' load and availability, and the SLA policy
// editor with its what-if comparison (actual vs draft per channel) before "Apply".
//
// Live: the board is pushed — QualityService/WatchKpis answers GetKpis at once and again after
// quality's read models moved (any ticketing, survey or incident event), through the gateway's
// NDJSON stream (api.js `watch`, as the on-call alerts). Each push re-reads the lists below too
// (their changes are ticketing events, which move the KPI read models); "Refresh now" re-reads
// everything. The stream reconnects when it drops and restarts for a new scope or UTC day; the
// risk list's time left counts down in the page (one timer). The SLA risk list is one ListTickets of the open tickets, nearest
// SLA due first (the summaries carry the clocks; RISK_PAGE tickets, "Show more" adds a page), and
// the approvals are ListCompensations across tickets (every pending one). The policy editor is
// never refreshed under the user's hands.
import { ApiError, Code, RECONNECT_MS, Services, newKey, watch } from "../api.js";
import { lineChart } from "../chart.js";
import { h, replace } from "../dom.js";

const TICK_MS = 1000; // the risk list's time left, repainted in the page
const RISK_PAGE = 25; // tickets per page of the SLA risk list
const APPROVAL_PAGES = 10; // at most 10 × 100 tickets with a pending compensation per refresh
const TREND_DAYS = 7;
const ABORTED = 10; // gRPC ABORTED: PutSlaPolicy's expected_revision was overtaken
const CHANNELS = ["phone", "email", "chat", "social", "app", "web", "store"];

const zh = {
  "supervisor.nav": "主管看板",
  "supervisor.title": "实时指标",
  "supervisor.refresh": "立即刷新",
  "supervisor.refreshed": "已更新 {time}（实时推送）",
  "supervisor.reconnecting": "推送连接中断，正在重连…",
  "supervisor.scope": "范围",
  "supervisor.scope.all": "全部",
  "supervisor.scope.channel": "渠道：{name}",
  "supervisor.scope.team": "团队：{name}",
  "supervisor.scope.agent": "坐席：{name}",
  "supervisor.period": "最近 {days} 天",
  "supervisor.kpi.csat": "满意度 CSAT",
  "supervisor.kpi.nps": "NPS",
  "supervisor.kpi.fcr": "首次解决率 FCR",
  "supervisor.kpi.first_response": "平均首次响应",
  "supervisor.kpi.resolution": "平均解决时长",
  "supervisor.kpi.aht": "平均处理时长 AHT",
  "supervisor.kpi.sla": "SLA 达成率",
  "supervisor.kpi.backlog": "积压工单",
  "supervisor.kpi.surveys": "问卷数",
  "supervisor.trends": "趋势（按天）",
  "supervisor.risk.title": "SLA 风险（最接近超时）",
  "supervisor.risk.empty": "没有运行中的 SLA 时钟。",
  "supervisor.risk.more": "显示更多",
  "supervisor.col.ticket": "工单",
  "supervisor.col.channel": "渠道",
  "supervisor.col.priority": "优先级",
  "supervisor.col.clock": "时钟",
  "supervisor.col.due": "剩余",
  "supervisor.col.due_at": "截止时间",
  "supervisor.col.assignee": "处理人",
  "supervisor.clock.FIRST_RESPONSE": "首次响应",
  "supervisor.clock.RESOLUTION": "解决",
  "supervisor.overdue": "已超时 {time}",
  "supervisor.follow.title": "待回访",
  "supervisor.follow.empty": "没有待回访。",
  "supervisor.col.agent": "坐席",
  "supervisor.col.csat": "CSAT",
  "supervisor.col.status": "状态",
  "supervisor.follow.PENDING": "待办",
  "supervisor.follow.OVERDUE": "已逾期",
  "supervisor.comp.title": "待审批补偿",
  "supervisor.comp.empty": "没有待审批的补偿。",
  "supervisor.col.amount": "金额",
  "supervisor.col.requested_by": "申请人",
  "supervisor.col.reason": "原因",
  "supervisor.comp.decision": "审批意见",
  "supervisor.comp.approve": "批准",
  "supervisor.comp.reject": "拒绝",
  "supervisor.comp.approved": "已批准 {id}",
  "supervisor.comp.rejected": "已拒绝 {id}",
  "supervisor.agents.title": "坐席负载与状态",
  "supervisor.agents.empty": "目录中没有坐席。",
  "supervisor.col.team": "团队",
  "supervisor.col.availability": "状态",
  "supervisor.col.load": "进行中 / 容量",
  "supervisor.availability.ONLINE": "在线",
  "supervisor.availability.AWAY": "离开",
  "supervisor.availability.OFFLINE": "离线",
  "supervisor.policy.title": "SLA 策略",
  "supervisor.policy.in_force": "生效版本 {version}（第 {revision} 版，{author}）",
  "supervisor.policy.document": "策略草稿（YAML）",
  "supervisor.policy.target_channel": "渠道",
  "supervisor.policy.target_value": "首次响应目标（如 15m、20s）",
  "supervisor.policy.set_target": "写入草稿",
  "supervisor.policy.no_target": "草稿中找不到渠道 {channel} 的首次响应目标。",
  "supervisor.policy.version": "新版本号",
  "supervisor.policy.compare": "与最近一天对比",
  "supervisor.policy.comparison": "最近一天：生效策略 与 草稿",
  "supervisor.policy.changes_nothing": "草稿对最近一天的工单没有任何影响。",
  "supervisor.policy.tickets": "工单",
  "supervisor.policy.sla_actual": "SLA 达成（生效）",
  "supervisor.policy.sla_draft": "SLA 达成（草稿）",
  "supervisor.policy.fr_actual": "首响超时（生效）",
  "supervisor.policy.fr_draft": "首响超时（草稿）",
  "supervisor.policy.res_actual": "解决超时（生效）",
  "supervisor.policy.res_draft": "解决超时（草稿）",
  "supervisor.policy.total": "合计",
  "supervisor.policy.reason": "变更原因",
  "supervisor.policy.apply": "应用",
  "supervisor.policy.compare_first": "请先对比当前草稿，再应用。",
  "supervisor.policy.reason_required": "请填写变更原因。",
  "supervisor.policy.applied": "已应用 SLA 策略 {version}",
  "supervisor.policy.stale": "策略已被他人修改，请重新加载。",
  "supervisor.error": "操作失败：{message}",
};

const en = {
  "supervisor.nav": "Supervisor",
  "supervisor.title": "Live KPIs",
  "supervisor.refresh": "Refresh now",
  "supervisor.refreshed": "Updated {time} (pushed live)",
  "supervisor.reconnecting": "Live connection lost, reconnecting…",
  "supervisor.scope": "Scope",
  "supervisor.scope.all": "All",
  "supervisor.scope.channel": "Channel: {name}",
  "supervisor.scope.team": "Team: {name}",
  "supervisor.scope.agent": "Agent: {name}",
  "supervisor.period": "Last {days} days",
  "supervisor.kpi.csat": "CSAT",
  "supervisor.kpi.nps": "NPS",
  "supervisor.kpi.fcr": "FCR",
  "supervisor.kpi.first_response": "First response (mean)",
  "supervisor.kpi.resolution": "Resolution time (mean)",
  "supervisor.kpi.aht": "AHT",
  "supervisor.kpi.sla": "SLA compliance",
  "supervisor.kpi.backlog": "Backlog",
  "supervisor.kpi.surveys": "Surveys",
  "supervisor.trends": "Trends (per day)",
  "supervisor.risk.title": "SLA risk (nearest to breach)",
  "supervisor.risk.more": "Show more",
  "supervisor.risk.empty": "No SLA clock is running.",
  "supervisor.col.ticket": "Ticket",
  "supervisor.col.channel": "Channel",
  "supervisor.col.priority": "Priority",
  "supervisor.col.clock": "Clock",
  "supervisor.col.due": "Left",
  "supervisor.col.due_at": "Due at",
  "supervisor.col.assignee": "Assignee",
  "supervisor.clock.FIRST_RESPONSE": "First response",
  "supervisor.clock.RESOLUTION": "Resolution",
  "supervisor.overdue": "Overdue {time}",
  "supervisor.follow.title": "Follow-ups due",
  "supervisor.follow.empty": "No follow-up is due.",
  "supervisor.col.agent": "Agent",
  "supervisor.col.csat": "CSAT",
  "supervisor.col.status": "Status",
  "supervisor.follow.PENDING": "Due",
  "supervisor.follow.OVERDUE": "Overdue",
  "supervisor.comp.title": "Compensation approvals",
  "supervisor.comp.empty": "No compensation waits for approval.",
  "supervisor.col.amount": "Amount",
  "supervisor.col.requested_by": "Requested by",
  "supervisor.col.reason": "Reason",
  "supervisor.comp.decision": "Decision reason",
  "supervisor.comp.approve": "Approve",
  "supervisor.comp.reject": "Reject",
  "supervisor.comp.approved": "Approved {id}",
  "supervisor.comp.rejected": "Rejected {id}",
  "supervisor.agents.title": "Agents' load and availability",
  "supervisor.agents.empty": "No agent in the directory.",
  "supervisor.col.team": "Team",
  "supervisor.col.availability": "Availability",
  "supervisor.col.load": "Active / capacity",
  "supervisor.availability.ONLINE": "Online",
  "supervisor.availability.AWAY": "Away",
  "supervisor.availability.OFFLINE": "Offline",
  "supervisor.policy.title": "SLA policy",
  "supervisor.policy.in_force": "In force: {version} (revision {revision}, by {author})",
  "supervisor.policy.document": "Policy draft (YAML)",
  "supervisor.policy.target_channel": "Channel",
  "supervisor.policy.target_value": "First response target (e.g. 15m, 20s)",
  "supervisor.policy.set_target": "Set in draft",
  "supervisor.policy.no_target": "The draft has no first-response target for channel {channel}.",
  "supervisor.policy.version": "New version",
  "supervisor.policy.compare": "Compare with the last day",
  "supervisor.policy.comparison": "The last day: policy in force vs draft",
  "supervisor.policy.changes_nothing": "The draft changes nothing for the last day's tickets.",
  "supervisor.policy.tickets": "Tickets",
  "supervisor.policy.sla_actual": "SLA met (in force)",
  "supervisor.policy.sla_draft": "SLA met (draft)",
  "supervisor.policy.fr_actual": "First-response breaches (in force)",
  "supervisor.policy.fr_draft": "First-response breaches (draft)",
  "supervisor.policy.res_actual": "Resolution breaches (in force)",
  "supervisor.policy.res_draft": "Resolution breaches (draft)",
  "supervisor.policy.total": "Total",
  "supervisor.policy.reason": "Reason for the change",
  "supervisor.policy.apply": "Apply",
  "supervisor.policy.compare_first": "Compare the current draft before applying it.",
  "supervisor.policy.reason_required": "A reason is required.",
  "supervisor.policy.applied": "SLA policy {version} applied",
  "supervisor.policy.stale": "Someone changed the policy meanwhile: reload it.",
  "supervisor.error": "Failed: {message}",
};

// ------------------------------------------------------------------------------ formatting

const num = (value) => Number(value || 0);
const percent = (ratio) => `${(num(ratio) * 100).toFixed(1)}%`;

function duration(seconds) {
  const s = Math.round(Math.abs(num(seconds)));
  const minutes = Math.round(s / 60);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
  return `${(s / 86400).toFixed(1)}d`;
}

const enumName = (value, prefix) => String(value || "").replace(prefix, "");
const lower = (value, prefix) => enumName(value, prefix).toLowerCase();
const dayLabel = (timestamp) => String(timestamp || "").slice(5, 10);

// The KPI cards: key, how to show the period's value, and (for trends) the per-day number.
const CARDS = [
  { key: "csat", show: (k) => (num(k.surveys) ? `${num(k.csatMean).toFixed(2)} · ${percent(k.csatSatisfiedRatio)}` : "–"), trend: (k) => (num(k.surveys) ? num(k.csatMean) : null), format: (v) => v.toFixed(2) },
  { key: "nps", show: (k) => (num(k.npsResponses) ? num(k.nps).toFixed(0) : "–") },
  { key: "fcr", show: (k) => percent(k.fcrRatio) },
  { key: "first_response", show: (k) => (num(k.firstResponses) ? duration(k.firstResponseSecondsMean) : "–"), trend: (k) => (num(k.firstResponses) ? num(k.firstResponseSecondsMean) : null), format: duration },
  { key: "resolution", show: (k) => (num(k.ticketsResolved) ? duration(k.resolutionSecondsMean) : "–") },
  { key: "aht", show: (k) => duration(k.ahtSeconds) },
  { key: "sla", show: (k) => percent(k.slaComplianceRatio), trend: (k) => (num(k.firstResponsesDue) || num(k.firstResponses) ? num(k.slaComplianceRatio) * 100 : null), format: (v) => `${v.toFixed(0)}%` },
  { key: "backlog", show: (k) => String(num(k.backlog)), trend: (k) => num(k.backlog), format: (v) => String(v) },
  { key: "surveys", show: (k) => String(num(k.surveys)) },
];

// ------------------------------------------------------------------------------ the policy draft

// Sets `channels.<channel>.first_response` in a document written like sla_default.yaml
// (`  chat: {calendar: 24x7, first_response: 30m}`); null when the line is not there.
export function setFirstResponse(document, channel, value) {
  const line = new RegExp(`^(\\s+${channel}:\\s*\\{[^}\\n]*first_response:\\s*)([^,}\\s]+)`, "m");
  return line.test(document) ? document.replace(line, `$1${value}`) : null;
}

export function setVersion(document, version) {
  return /^version:.*$/m.test(document)
    ? document.replace(/^version:.*$/m, `version: ${version}`)
    : `version: ${version}\n${document}`;
}

// ------------------------------------------------------------------------------ the view

export default {
  id: "supervisor",
  title: "supervisor.nav",
  requires: [`${Services.quality}/GetKpis`, `${Services.quality}/WhatIf`],
  strings: { zh, en },

  async render(root, { call, t, can, toast }) {
    let scope = "";
    let agents = [];
    const status = h("p", { id: "board-status", class: "muted", role: "status" });
    const scopeSelect = h("select", { id: "kpi-scope", onchange: () => { scope = scopeSelect.value; restartWatch(); } });
    const board = h("dl", { id: "kpi-board", class: "kpi-board" });
    const trends = h("div", { id: "kpi-trends", class: "trends" });
    const risk = h("tbody");
    let riskLimit = RISK_PAGE; // the risk list's tickets: one page more per "Show more"
    const riskMore = h("button", { type: "button", class: "secondary", id: "risk-more", hidden: true, onclick: () => { riskLimit = Math.min(500, riskLimit + RISK_PAGE); refresh(); } }, t("supervisor.risk.more"));
    const subjects = new Map(); // ticket id -> subject, from the risk list (the approvals' label)
    const followUps = h("tbody");
    const approvals = h("tbody");
    const agentRows = h("tbody");
    const policy = h("section", { class: "panel stack", "aria-labelledby": "policy-title" });

    const table = (id, headers, body) =>
      h("table", { id }, h("thead", {}, h("tr", {}, headers.map((key) => h("th", { scope: "col" }, t(key))))), body);
    const empty = (body, columns, key) => replace(body, h("tr", {}, h("td", { colspan: columns }, t(key))));
    const failed = (error) => toast(t("supervisor.error", { message: error.message }));

    replace(
      root,
      h("div", { class: "supervisor" },
        h("div", { class: "row board-head" },
          h("h1", {}, t("supervisor.title")),
          h("label", { for: "kpi-scope" }, t("supervisor.scope"), scopeSelect),
          h("button", { type: "button", class: "secondary", onclick: () => refresh() }, t("supervisor.refresh")),
          status),
        h("section", { class: "panel", "aria-labelledby": "kpi-title" },
          h("h2", { id: "kpi-title" }, t("supervisor.period", { days: TREND_DAYS })),
          board,
          h("h2", {}, t("supervisor.trends")),
          trends),
        h("div", { class: "supervisor-grid" },
          h("section", { class: "panel", "aria-labelledby": "risk-title" },
            h("h2", { id: "risk-title" }, t("supervisor.risk.title")),
            table("sla-risk", ["supervisor.col.ticket", "supervisor.col.channel", "supervisor.col.priority", "supervisor.col.clock", "supervisor.col.due", "supervisor.col.assignee"], risk),
            riskMore),
          h("section", { class: "panel", "aria-labelledby": "agents-title" },
            h("h2", { id: "agents-title" }, t("supervisor.agents.title")),
            table("agent-load", ["supervisor.col.agent", "supervisor.col.team", "supervisor.col.availability", "supervisor.col.load"], agentRows)),
          h("section", { class: "panel", "aria-labelledby": "follow-title" },
            h("h2", { id: "follow-title" }, t("supervisor.follow.title")),
            table("follow-ups", ["supervisor.col.ticket", "supervisor.col.agent", "supervisor.col.csat", "supervisor.col.due_at", "supervisor.col.status"], followUps)),
          h("section", { class: "panel", "aria-labelledby": "comp-title" },
            h("h2", { id: "comp-title" }, t("supervisor.comp.title")),
            table("approvals", ["supervisor.col.ticket", "supervisor.col.amount", "supervisor.col.requested_by", "supervisor.col.reason", "supervisor.comp.decision"], approvals))),
        policy),
    );

    // -------------------------------------------------------------------- the board

    let scopeKey = "";
    function scopeOptions() {
      const key = agents.map((a) => `${a.agentId}/${a.team}/${a.name}`).join(",");
      if (key === scopeKey) return; // unchanged: leave the control alone under the user
      scopeKey = key;
      const teams = [...new Set(agents.map((a) => a.team).filter(Boolean))].sort();
      const options = [
        ["", t("supervisor.scope.all")],
        ...CHANNELS.map((c) => [`channel:CHANNEL_${c.toUpperCase()}`, t("supervisor.scope.channel", { name: c })]),
        ...teams.map((team) => [`team:${team}`, t("supervisor.scope.team", { name: team })]),
        ...agents.map((a) => [`agent:${a.agentId}`, t("supervisor.scope.agent", { name: a.name || a.agentId })]),
      ];
      replace(scopeSelect, options.map(([value, label]) => h("option", { value, selected: value === scope }, label)));
    }

    function filter() {
      const [kind, value] = scope.split(/:(.*)/s);
      if (kind === "channel") return { channel: value };
      if (kind === "team") return { team: value };
      if (kind === "agent") return { agentId: value };
      return {};
    }

    function showKpis(answer) {
      const kpis = answer.kpis || {};
      replace(board, CARDS.map((card) =>
        h("div", { class: "kpi", dataset: { kpi: card.key } }, h("dt", {}, t(`supervisor.kpi.${card.key}`)), h("dd", {}, card.show(kpis)))));
      const days = answer.byDay || [];
      replace(trends, CARDS.filter((card) => card.trend).map((card) =>
        lineChart(days.map((day) => ({ label: dayLabel(day.day), value: card.trend(day) })), { title: t(`supervisor.kpi.${card.key}`), format: card.format })));
    }

    function showRisk(tickets, now) {
      const clocks = [];
      for (const ticket of tickets) {
        for (const clock of ticket.sla || []) {
          if (!clock.running || !clock.dueAt) continue;
          clocks.push({ ticket, clock, left: (Date.parse(clock.dueAt) - now) / 1000 });
        }
      }
      clocks.sort((a, b) => a.left - b.left);
      if (!clocks.length) return empty(risk, 6, "supervisor.risk.empty");
      // Nearest to breach first; already overdue ones lead.
      replace(risk, clocks.map(({ ticket, clock, left }) => {
        const level = left <= 0 ? "risk" : clock.warned ? "warn" : "ok";
        return h("tr", { dataset: { ticket: ticket.ticketId, clock: enumName(clock.clock, "SLA_CLOCK_") } },
          h("td", {}, ticket.subject || ticket.ticketId),
          h("td", {}, lower(ticket.channel, "CHANNEL_")),
          h("td", {}, lower(ticket.priority, "PRIORITY_")),
          h("td", {}, t(`supervisor.clock.${enumName(clock.clock, "SLA_CLOCK_")}`)),
          h("td", {}, riskClock(clock, level, left)),
          h("td", {}, ticket.assigneeId || "–"));
      }));
    }

    // The time left of a risk row: repainted every TICK_MS from its due time.
    function riskClock(clock, level, left) {
      const element = h("span", { class: `clock ${level}`, dataset: { due: clock.dueAt, warned: String(Boolean(clock.warned)) } });
      paintRisk(element, left);
      return element;
    }

    function paintRisk(element, left = (Date.parse(element.dataset.due) - Date.now()) / 1000) {
      element.textContent = left <= 0 ? t("supervisor.overdue", { time: duration(left) }) : duration(left);
      if (left <= 0) element.className = "clock risk";
    }

    function showApprovals(compensations) {
      const pending = compensations.map((c) => ({ ticket: { ticketId: c.ticketId, subject: subjects.get(c.ticketId) }, c }));
      if (!pending.length) return empty(approvals, 5, "supervisor.comp.empty");
      const mayApprove = can(Services.ticketing, "ApproveCompensation");
      const mayReject = can(Services.ticketing, "RejectCompensation");
      // A pending compensation's row is kept across refreshes (its facts do not change while
      // it waits): rebuilding it would drop a half-typed decision, the focus, or a click
      // pressed just before the refresh and released after it.
      const kept = new Map([...approvals.querySelectorAll("tr[data-compensation]")].map((row) => [row.dataset.compensation, row]));
      const rows = pending.map(({ ticket, c }) => kept.get(c.compensationId) || approvalRow(ticket, c, mayApprove, mayReject));
      rows.forEach((row, index) => {
        if (approvals.children[index] !== row) approvals.insertBefore(row, approvals.children[index] || null);
      });
      while (approvals.children.length > rows.length) approvals.lastElementChild.remove();
    }

    function approvalRow(ticket, c, mayApprove, mayReject) {
      const reasonId = `decision-${c.compensationId}`;
      const reason = h("input", { id: reasonId, type: "text" });
      const decide = async (method, done) => {
        try {
          await call(Services.ticketing, method, { ticketId: ticket.ticketId, compensationId: c.compensationId, reason: reason.value }, { idempotencyKey: newKey() });
          toast(t(done, { id: c.compensationId }));
          refresh();
        } catch (error) {
          failed(error);
        }
      };
      return h("tr", { dataset: { compensation: c.compensationId } },
        h("td", {}, ticket.subject || ticket.ticketId),
        h("td", {}, `${c.amount} ${c.currency}`),
        h("td", {}, c.requestedBy),
        h("td", {}, c.reason),
        h("td", { class: "row" },
          h("label", { for: reasonId }, t("supervisor.comp.decision"), reason),
          mayApprove && h("button", { type: "button", onclick: () => decide("ApproveCompensation", "supervisor.comp.approved") }, t("supervisor.comp.approve")),
          mayReject && h("button", { type: "button", class: "secondary", onclick: () => decide("RejectCompensation", "supervisor.comp.rejected") }, t("supervisor.comp.reject"))));
    }

    function showFollowUps(items) {
      const due = items.filter((f) => f.status === "FOLLOW_UP_STATUS_PENDING" || f.status === "FOLLOW_UP_STATUS_OVERDUE");
      due.sort((a, b) => Date.parse(a.dueAt || 0) - Date.parse(b.dueAt || 0));
      if (!due.length) return empty(followUps, 5, "supervisor.follow.empty");
      replace(followUps, due.map((f) => {
        const state = enumName(f.status, "FOLLOW_UP_STATUS_");
        return h("tr", {},
          h("td", {}, f.ticketId),
          h("td", {}, f.agentId || "–"),
          h("td", {}, String(f.csat)),
          h("td", {}, f.dueAt ? new Date(f.dueAt).toLocaleString() : "–"),
          h("td", {}, h("span", { class: `clock ${state === "OVERDUE" ? "risk" : "warn"}` }, t(`supervisor.follow.${state}`))));
      }));
    }

    function showAgents() {
      if (!agents.length) return empty(agentRows, 4, "supervisor.agents.empty");
      replace(agentRows, agents.map((a) => {
        const availability = enumName(a.availability, "AVAILABILITY_") || "OFFLINE";
        const capacity = (a.channels || []).reduce((sum, c) => sum + num(c.capacity), 0);
        return h("tr", { dataset: { agent: a.agentId } },
          h("td", {}, a.name || a.agentId),
          h("td", {}, a.team || "–"),
          h("td", {}, h("span", { class: `availability ${availability.toLowerCase()}` }, t(`supervisor.availability.${availability}`))),
          h("td", {}, `${num(a.openTickets)} / ${capacity}`));
      }));
    }

    // The open tickets nearest to an SLA breach first, with their clocks (one ListTickets).
    async function riskTickets() {
      const answer = await call(Services.ticketing, "ListTickets", { openOnly: true, order: "TICKET_ORDER_SLA_DUE", pageSize: riskLimit });
      riskMore.hidden = !answer.nextPageToken;
      const tickets = answer.tickets || [];
      tickets.forEach((ticket) => subjects.set(ticket.ticketId, ticket.subject));
      return tickets;
    }

    // Every pending compensation across tickets (ListCompensations without a ticket, paged).
    async function pendingCompensations() {
      const all = [];
      let pageToken = "";
      for (let page = 0; page < APPROVAL_PAGES; page += 1) {
        const answer = await call(Services.ticketing, "ListCompensations", { pageSize: 100, pageToken });
        all.push(...(answer.compensations || []));
        pageToken = answer.nextPageToken;
        if (!pageToken) break;
      }
      return all;
    }

    // The KPIs of the board: the last TREND_DAYS UTC days, by day, in the chosen scope.
    function kpiQuery() {
      const today = new Date();
      const start = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (TREND_DAYS - 1)));
      const end = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + 1));
      return { filter: filter(), period: { start: start.toISOString(), end: end.toISOString() }, byDay: true };
    }

    let busy = false;
    let again = false; // asked for while a refresh ran: read again right after it
    let latest = null; // the last pushed KPIs not shown yet
    async function refresh(pushed = null) {
      if (pushed) latest = pushed;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      const given = latest;
      latest = null;
      try {
        const [kpis, tickets, compensations, follow, directory] = await Promise.all([
          given || call(Services.quality, "GetKpis", kpiQuery()),
          riskTickets(),
          pendingCompensations(),
          call(Services.quality, "ListFollowUps", { pageSize: 200 }),
          call(Services.ticketing, "ListAgents", {}),
        ]);
        agents = directory.agents || [];
        scopeOptions();
        showKpis(kpis);
        showRisk(tickets, Date.now());
        showApprovals(compensations);
        showFollowUps(follow.followUps || []);
        showAgents();
        status.textContent = t("supervisor.refreshed", { time: new Date().toLocaleTimeString() });
      } catch (error) {
        status.textContent = t("supervisor.error", { message: error.message });
      } finally {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      }
    }

    // The push: one WatchKpis stream for the scope and period shown; reconnected when it drops
    // (0.5 s, 1 s, 2 s, then every 5 s), restarted for a new scope and at the next UTC day.
    let stopped = false;
    let controller = null;
    async function keepWatching(signal) {
      let attempt = 0;
      while (!signal.aborted) {
        try {
          await watch(Services.quality, "WatchKpis", { query: kpiQuery() }, {
            signal,
            onOpen: () => {
              attempt = 0;
              status.dataset.state = "connected";
            },
            onMessage: (answer) => refresh(answer.kpis || {}),
          });
        } catch (error) {
          if (signal.aborted) return;
          if (error instanceof ApiError && [Code.INVALID_ARGUMENT, Code.PERMISSION_DENIED, Code.UNAUTHENTICATED].includes(error.code)) {
            status.textContent = t("supervisor.error", { message: error.message });
            status.dataset.state = "refused";
            return;
          }
        }
        if (signal.aborted) return;
        status.textContent = t("supervisor.reconnecting");
        status.dataset.state = "reconnecting";
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)]));
        attempt += 1;
      }
    }

    let midnight = null;
    function restartWatch() {
      controller?.abort();
      clearTimeout(midnight);
      if (stopped) return;
      controller = new AbortController();
      keepWatching(controller.signal);
      const now = new Date();
      const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
      midnight = setTimeout(restartWatch, next - now.getTime() + 1000); // the new day's period
    }

    // -------------------------------------------------------------------- the policy editor

    async function showPolicy() {
      if (!can(Services.ticketing, "GetSlaPolicy")) return;
      const { policy: inForce = {} } = await call(Services.ticketing, "GetSlaPolicy", {});
      let compared = null; // the draft text last compared
      const draft = h("textarea", { id: "sla-draft", rows: 14, spellcheck: false, oninput: () => (compared = null) });
      draft.value = inForce.document || "";
      const channel = h("select", { id: "sla-channel" }, CHANNELS.map((c) => h("option", { value: c }, c)));
      const target = h("input", { id: "sla-first-response", type: "text", size: 8 });
      const version = h("input", { id: "sla-version", type: "text", value: `${inForce.version}-r${num(inForce.revision) + 1}` });
      const reason = h("input", { id: "sla-reason", type: "text", size: 40 });
      const message = h("p", { id: "policy-message", class: "error", role: "alert" });
      const comparison = h("div", { id: "what-if" });

      function setTarget() {
        const changed = setFirstResponse(draft.value, channel.value, target.value.trim());
        if (changed === null) {
          message.textContent = t("supervisor.policy.no_target", { channel: channel.value });
          return;
        }
        message.textContent = "";
        draft.value = changed;
        compared = null;
      }

      function cell(actual, alternative, show) {
        const a = show(actual || {});
        const b = show(alternative || {});
        return [h("td", {}, a), h("td", { class: a === b ? "" : "changed" }, b)];
      }

      function row(label, group, header = false) {
        return h("tr", { dataset: { key: label } },
          h(header ? "th" : "td", header ? { scope: "row" } : {}, label),
          h("td", {}, String(num(group.tickets))),
          cell(group.actual, group.alternative, (o) => percent(o.slaComplianceRatio)),
          cell(group.actual, group.alternative, (o) => String(num(o.firstResponseBreaches))),
          cell(group.actual, group.alternative, (o) => String(num(o.resolutionBreaches))));
      }

      async function compare() {
        message.textContent = "";
        if (version.value.trim()) draft.value = setVersion(draft.value, version.value.trim());
        const end = new Date();
        const start = new Date(end.getTime() - 24 * 3600 * 1000);
        try {
          const answer = await call(Services.quality, "WhatIf", { period: { start: start.toISOString(), end: end.toISOString() }, policyYaml: draft.value });
          compared = draft.value;
          const headers = ["supervisor.col.channel", "supervisor.policy.tickets", "supervisor.policy.sla_actual", "supervisor.policy.sla_draft", "supervisor.policy.fr_actual", "supervisor.policy.fr_draft", "supervisor.policy.res_actual", "supervisor.policy.res_draft"];
          replace(comparison,
            h("h3", {}, t("supervisor.policy.comparison")),
            answer.changesNothing && h("p", {}, t("supervisor.policy.changes_nothing")),
            h("table", { id: "what-if-table" },
              h("thead", {}, h("tr", {}, headers.map((key) => h("th", { scope: "col" }, t(key))))),
              h("tbody", {}, (answer.byChannel || []).map((group) => row(group.key, group))),
              h("tfoot", {}, row(t("supervisor.policy.total"), answer, true))));
        } catch (error) {
          compared = null;
          replace(comparison);
          message.textContent = error.violations.length
            ? error.violations.map((v) => `${v.field}: ${v.description}`).join("; ")
            : t("supervisor.error", { message: error.message });
        }
      }

      async function apply() {
        message.textContent = "";
        if (compared === null || compared !== draft.value) {
          message.textContent = t("supervisor.policy.compare_first");
          return;
        }
        if (!reason.value.trim()) {
          message.textContent = t("supervisor.policy.reason_required");
          reason.focus();
          return;
        }
        try {
          const answer = await call(
            Services.ticketing, "PutSlaPolicy",
            { document: draft.value, reason: reason.value.trim(), expectedRevision: num(inForce.revision) },
            { idempotencyKey: newKey() },
          );
          toast(t("supervisor.policy.applied", { version: answer.policy.version }));
          await showPolicy();
        } catch (error) {
          message.textContent = error.code === ABORTED ? t("supervisor.policy.stale")
            : error.violations.length ? error.violations.map((v) => `${v.field}: ${v.description}`).join("; ")
            : t("supervisor.error", { message: error.message });
        }
      }

      const mayApply = can(Services.ticketing, "PutSlaPolicy");
      replace(policy,
        h("h2", { id: "policy-title" }, t("supervisor.policy.title")),
        h("p", { id: "policy-in-force" }, t("supervisor.policy.in_force", { version: inForce.version, revision: num(inForce.revision), author: inForce.author || "–" })),
        h("div", { class: "policy-grid" },
          h("div", { class: "stack" },
            h("label", { for: "sla-draft" }, t("supervisor.policy.document"), draft),
            h("div", { class: "row" },
              h("label", { for: "sla-channel" }, t("supervisor.policy.target_channel"), channel),
              h("label", { for: "sla-first-response" }, t("supervisor.policy.target_value"), target),
              h("button", { type: "button", class: "secondary", onclick: setTarget }, t("supervisor.policy.set_target"))),
            h("div", { class: "row" },
              h("label", { for: "sla-version" }, t("supervisor.policy.version"), version),
              h("button", { type: "button", onclick: compare }, t("supervisor.policy.compare")))),
          h("div", { class: "stack" },
            comparison,
            mayApply && h("div", { class: "row" },
              h("label", { for: "sla-reason" }, t("supervisor.policy.reason"), reason),
              h("button", { type: "button", onclick: apply }, t("supervisor.policy.apply"))),
            message)));
    }

    // The first push shows the board; the lists and the policy are read meanwhile.
    restartWatch();
    await showPolicy().catch((error) => error.code === Code.PERMISSION_DENIED || failed(error));
    const tick = setInterval(() => risk.querySelectorAll(".clock[data-due]").forEach((element) => paintRisk(element)), TICK_MS);
    return () => {
      stopped = true;
      controller?.abort();
      clearTimeout(midnight);
      clearInterval(tick);
    };
  },
};
