// The agent desk (issue 15): my queue and the team queue (filters, SLA clocks counting down,
// coloured by the risk of breach), the ticket with its conversation, replies with macros
// (ticketing's ListMacros), hold / resume with a reason, and the customer 360 beside it.
import { ApiError, Code, newKey, RECONNECT_MS, Services, watch } from "../api.js";
import { h, replace } from "../dom.js";
import { formatTime, kindLabel, translated } from "../i18n.js";

const T = Services.ticketing;
// A watch answered with these is refused, not dropped: reconnecting would not help.
const REFUSED = [Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.PERMISSION_DENIED, Code.UNAUTHENTICATED];
// The customer service's timeline sentences (its projections' fixed English templates) and
// the parts the page words itself: see translated() in i18n.js.
const C360_TIMELINE = {
  registered: [/^registered \((.+)\)$/, ["locale"]],
  profile_updated: [/^profile updated: (.*)$/, ["fields"]],
  tagged: [/^tags (.*)$/, ["tags"]],
  purchase: [/^purchase (\S+): (\S+) (\S+)$/, ["order", "amount", "currency"]],
  segment: [/^segment (\S+) \((R\d+ F\d+ M\d+)\)(, churn risk)?$/, ["tier", "scores", "churn"], ["churn"]],
  erased: [/^personal data erased \((.+)\)$/, ["reason"]],
  incident_notified: [/^notified about incident (\S+) by (.+)$/, ["incident", "how"]],
  incident_notice_failed: [/^notice about incident (\S+) not sent: (.*)$/s, ["incident", "error"]],
  ticket_opened: [/^(\S+) ticket opened via (\S+) \((\S+) priority\)$/, ["type", "channel", "priority"]],
  ticket_assigned: [/^assigned to an agent$/, []],
  customer_replied: [/^customer replied$/, []],
  agent_note: [/^agent wrote an internal note$/, []],
  agent_replied: [/^agent replied$/, []],
  priority_changed: [/^priority changed to (\S+)$/, ["priority"]],
  ticket_escalated: [/^escalated to level (\S+)$/, ["level"]],
  ticket_held: [/^on hold \((.+)\)$/, ["reason"]],
  ticket_resumed: [/^resumed$/, []],
  ticket_resolved: [/^resolved( at first contact)?$/, ["first"], ["first"]],
  ticket_reopened: [/^reopened$/, []],
  ticket_closed: [/^closed$/, []],
  sla_breached: [/^(\S+) SLA breached$/, ["clock"]],
  compensation_granted: [/^compensation (\S+) (\S+) (\S+) (granted.*)$/, ["kind", "amount", "currency", "outcome"]],
  compensation_requested: [/^compensation (\S+) (\S+) (\S+) requested, awaiting approval$/, ["kind", "amount", "currency"]],
  compensation_rejected: [/^compensation (\S+) (\S+) (\S+) rejected$/, ["kind", "amount", "currency"]],
  incident_declared: [/^affected by level (\S+) incident (\S+) \((.+)\)$/, ["level", "incident", "type"]],
  incident_linked: [/^ticket linked to incident (\S+)$/, ["incident"]],
};
const C = Services.customer;
const OPEN_STATUSES = ["TICKET_STATUS_OPEN", "TICKET_STATUS_ASSIGNED", "TICKET_STATUS_IN_PROGRESS", "TICKET_STATUS_ON_HOLD"];
const PRIORITIES = ["PRIORITY_URGENT", "PRIORITY_HIGH", "PRIORITY_NORMAL", "PRIORITY_LOW"];
const CHANNELS = ["CHANNEL_PHONE", "CHANNEL_EMAIL", "CHANNEL_CHAT", "CHANNEL_SOCIAL", "CHANNEL_APP", "CHANNEL_WEB", "CHANNEL_STORE"];
const COMPENSATION_KINDS = ["COMPENSATION_KIND_REFUND", "COMPENSATION_KIND_DISCOUNT", "COMPENSATION_KIND_REPLACEMENT", "COMPENSATION_KIND_GIFT"];
const HOLD_REASONS = ["HOLD_REASON_WAITING_CUSTOMER", "HOLD_REASON_WAITING_THIRD_PARTY", "HOLD_REASON_WAITING_INTERNAL"];

// What the desk remembers across renders (a language switch re-renders the view).
const state = { mode: "mine", status: "", priority: "", channel: "", selected: "" };

const strings = {
  zh: {
    "agent.nav": "坐席工作台",
    "agent.title": "坐席工作台",
    "agent.queues": "队列",
    "agent.mine": "我的队列",
    "agent.team": "团队队列",
    "agent.refresh": "刷新",
    "agent.filter.status": "状态",
    "agent.filter.priority": "优先级",
    "agent.filter.channel": "渠道",
    "agent.filter.any": "全部",
    "agent.empty": "队列为空。",
    "agent.col.ticket": "工单",
    "agent.col.priority": "优先级",
    "agent.col.opened": "创建时间",
    "agent.col.first_response": "首次响应",
    "agent.open": "打开工单 {subject}",
    "agent.none_selected": "从队列中选择一个工单。",
    "agent.ticket": "工单",
    "agent.customer": "客户",
    "agent.status": "状态",
    "agent.assignee": "处理人",
    "agent.unassigned": "未分配",
    "agent.take": "由我处理",
    "agent.clock.first_response": "首次响应",
    "agent.clock.resolution": "解决时限",
    "agent.clock.met": "已达成",
    "agent.clock.breached": "已超时 {time}",
    "agent.clock.paused": "已暂停",
    "agent.clock.left": "剩余 {time}",
    "agent.clock.overdue": "超时 {time}",
    "agent.conversation": "对话记录",
    "agent.author.customer": "客户",
    "agent.author.agent": "坐席",
    "agent.author.system": "系统",
    "agent.reply": "回复",
    "agent.macro": "快捷回复（宏）",
    "agent.macro.none": "不使用宏",
    "agent.reply.body": "回复内容",
    "agent.reply.internal": "内部备注（客户不可见）",
    "agent.reply.send": "发送回复",
    "agent.reply.sent": "回复已发送。",
    "agent.hold": "挂起",
    "agent.hold.reason": "挂起原因",
    "agent.hold.note": "挂起说明",
    "agent.hold.submit": "挂起工单",
    "agent.hold.done": "工单已挂起。",
    "agent.resume": "恢复处理",
    "agent.resume.done": "工单已恢复。",
    "agent.comp": "补偿",
    "agent.comp.kind": "补偿类型",
    "agent.comp.amount": "金额",
    "agent.comp.currency": "币种",
    "agent.comp.reason": "补偿理由",
    "agent.comp.submit": "发放补偿",
    "agent.comp.note": "超出你的权限额度时，补偿将等待主管审批。",
    "agent.comp.granted": "补偿已发放。",
    "agent.comp.pending": "超出额度：已提交主管审批。",
    "agent.comp.none": "暂无补偿",
    "enum.COMPENSATION_KIND_REFUND": "退款",
    "enum.COMPENSATION_KIND_DISCOUNT": "折扣",
    "enum.COMPENSATION_KIND_REPLACEMENT": "换货",
    "enum.COMPENSATION_KIND_GIFT": "赠品",
    "enum.COMPENSATION_STATUS_PENDING": "待审批",
    "enum.COMPENSATION_STATUS_GRANTED": "已发放",
    "enum.COMPENSATION_STATUS_REJECTED": "已驳回",
    "agent.steps": "投诉处理步骤",
    "agent.steps.taken": "已完成",
    "agent.steps.left": "待完成",
    "agent.steps.step": "步骤",
    "agent.steps.note": "记录",
    "agent.steps.plan": "解决方案",
    "agent.steps.options": "可选方案（每行一个）",
    "agent.steps.follow_up_at": "回访时间",
    "agent.steps.outcome": "回访结果",
    "agent.steps.root_cause": "根本原因",
    "agent.steps.prevention": "预防措施",
    "agent.steps.shared": "已与团队分享",
    "agent.steps.submit": "记录步骤",
    "agent.steps.done": "步骤已记录。",
    "enum.COMPLAINT_STEP_LISTEN": "倾听",
    "enum.COMPLAINT_STEP_CONFIRM": "确认问题",
    "enum.COMPLAINT_STEP_APOLOGISE": "致歉",
    "enum.COMPLAINT_STEP_SOLVE": "解决",
    "enum.COMPLAINT_STEP_FOLLOW_UP": "回访",
    "enum.COMPLAINT_STEP_SUMMARISE": "总结",
    "agent.c360": "客户 360",
    "agent.c360.unknown": "客户档案中没有此客户。",
    "agent.c360.tier": "等级",
    "agent.c360.tags": "标签",
    "agent.c360.csat": "满意度",
    "agent.c360.csat_value": "{csat}（{surveys} 份问卷）",
    "agent.c360.no_surveys": "暂无问卷",
    "agent.c360.tickets": "工单总数",
    "agent.c360.open_tickets": "未结工单",
    "agent.c360.timeline": "时间线",
    "agent.c360.kind.registered": "注册",
    "agent.c360.kind.profile_updated": "资料更新",
    "agent.c360.kind.tagged": "标签",
    "agent.c360.kind.purchase": "购买",
    "agent.c360.kind.segment": "分层",
    "agent.c360.kind.erased": "已删除",
    "agent.c360.kind.incident_notified": "事件通知",
    "agent.c360.kind.incident_notice_failed": "通知失败",
    "agent.c360.kind.ticket_opened": "新工单",
    "agent.c360.kind.ticket_assigned": "分配",
    "agent.c360.kind.customer_replied": "客户回复",
    "agent.c360.kind.agent_note": "内部备注",
    "agent.c360.kind.agent_replied": "坐席回复",
    "agent.c360.kind.priority_changed": "优先级",
    "agent.c360.kind.ticket_escalated": "升级",
    "agent.c360.kind.ticket_held": "挂起",
    "agent.c360.kind.ticket_resumed": "恢复",
    "agent.c360.kind.ticket_resolved": "解决",
    "agent.c360.kind.ticket_reopened": "重开",
    "agent.c360.kind.ticket_closed": "关闭",
    "agent.c360.kind.sla_breached": "SLA 超时",
    "agent.c360.kind.compensation_granted": "补偿",
    "agent.c360.kind.compensation_requested": "补偿申请",
    "agent.c360.kind.compensation_rejected": "补偿驳回",
    "agent.c360.kind.incident_declared": "受事件影响",
    "agent.c360.kind.incident_linked": "关联事件",
    "agent.c360.entry.registered": "已注册（{locale}）",
    "agent.c360.entry.segment.churn": "，有流失风险",
    "agent.c360.entry.ticket_resolved.first": "（首次接触即解决）",
    "agent.c360.entry.profile_updated": "资料已更新：{fields}",
    "agent.c360.entry.tagged": "标签 {tags}",
    "agent.c360.entry.purchase": "购买 {order}：{amount} {currency}",
    "agent.c360.entry.segment": "分层 {tier}（{scores}）{churn}",
    "agent.c360.entry.erased": "个人数据已删除（{reason}）",
    "agent.c360.entry.incident_notified": "已通过 {how} 通知事件 {incident}",
    "agent.c360.entry.incident_notice_failed": "事件 {incident} 的通知未送达：{error}",
    "agent.c360.entry.ticket_opened": "经 {channel} 创建 {type} 工单（优先级 {priority}）",
    "agent.c360.entry.ticket_assigned": "已分配给坐席",
    "agent.c360.entry.customer_replied": "客户已回复",
    "agent.c360.entry.agent_note": "坐席写了内部备注",
    "agent.c360.entry.agent_replied": "坐席已回复",
    "agent.c360.entry.priority_changed": "优先级改为 {priority}",
    "agent.c360.entry.ticket_escalated": "升级到第 {level} 级",
    "agent.c360.entry.ticket_held": "挂起（{reason}）",
    "agent.c360.entry.ticket_resumed": "已恢复",
    "agent.c360.entry.ticket_resolved": "已解决{first}",
    "agent.c360.entry.ticket_reopened": "已重开",
    "agent.c360.entry.ticket_closed": "已关闭",
    "agent.c360.entry.sla_breached": "{clock} SLA 超时",
    "agent.c360.entry.compensation_granted": "补偿 {kind} {amount} {currency} 已发放",
    "agent.c360.entry.compensation_requested": "补偿 {kind} {amount} {currency} 已申请，待审批",
    "agent.c360.entry.compensation_rejected": "补偿 {kind} {amount} {currency} 已驳回",
    "agent.c360.entry.incident_declared": "受 {level} 级事件 {incident}（{type}）影响",
    "agent.c360.entry.incident_linked": "工单已关联事件 {incident}",
    "agent.c360.none": "无",
    "enum.TICKET_STATUS_OPEN": "待处理",
    "enum.TICKET_STATUS_ASSIGNED": "已分配",
    "enum.TICKET_STATUS_IN_PROGRESS": "处理中",
    "enum.TICKET_STATUS_ON_HOLD": "已挂起",
    "enum.TICKET_STATUS_RESOLVED": "已解决",
    "enum.TICKET_STATUS_CLOSED": "已关闭",
    "enum.PRIORITY_URGENT": "紧急",
    "enum.PRIORITY_HIGH": "高",
    "enum.PRIORITY_NORMAL": "普通",
    "enum.PRIORITY_LOW": "低",
    "enum.CHANNEL_PHONE": "电话",
    "enum.CHANNEL_EMAIL": "邮件",
    "enum.CHANNEL_CHAT": "在线聊天",
    "enum.CHANNEL_SOCIAL": "社交媒体",
    "enum.CHANNEL_APP": "App",
    "enum.CHANNEL_WEB": "网页",
    "enum.CHANNEL_STORE": "门店",
    "enum.HOLD_REASON_WAITING_CUSTOMER": "等待客户",
    "enum.HOLD_REASON_WAITING_THIRD_PARTY": "等待第三方",
    "enum.HOLD_REASON_WAITING_INTERNAL": "等待内部",
    "enum.CUSTOMER_TIER_UNSPECIFIED": "未分级",
    "enum.CUSTOMER_TIER_HIGH_VALUE": "高价值",
    "enum.CUSTOMER_TIER_POTENTIAL": "潜力",
    "enum.CUSTOMER_TIER_REGULAR": "常规",
    "enum.CUSTOMER_TIER_LOW_FREQUENCY": "低频",
  },
  en: {
    "agent.nav": "Agent desk",
    "agent.title": "Agent desk",
    "agent.queues": "Queues",
    "agent.mine": "My queue",
    "agent.team": "Team queue",
    "agent.refresh": "Refresh",
    "agent.filter.status": "Status",
    "agent.filter.priority": "Priority",
    "agent.filter.channel": "Channel",
    "agent.filter.any": "Any",
    "agent.empty": "The queue is empty.",
    "agent.col.ticket": "Ticket",
    "agent.col.priority": "Priority",
    "agent.col.opened": "Opened",
    "agent.col.first_response": "First response",
    "agent.open": "Open ticket {subject}",
    "agent.none_selected": "Pick a ticket from the queue.",
    "agent.ticket": "Ticket",
    "agent.customer": "Customer",
    "agent.status": "Status",
    "agent.assignee": "Assignee",
    "agent.unassigned": "Unassigned",
    "agent.take": "Take it",
    "agent.clock.first_response": "First response",
    "agent.clock.resolution": "Resolution",
    "agent.clock.met": "Met",
    "agent.clock.breached": "Breached {time}",
    "agent.clock.paused": "Paused",
    "agent.clock.left": "{time} left",
    "agent.clock.overdue": "{time} overdue",
    "agent.conversation": "Conversation",
    "agent.author.customer": "Customer",
    "agent.author.agent": "Agent",
    "agent.author.system": "System",
    "agent.reply": "Reply",
    "agent.macro": "Macro",
    "agent.macro.none": "No macro",
    "agent.reply.body": "Message",
    "agent.reply.internal": "Internal note (the customer does not see it)",
    "agent.reply.send": "Send reply",
    "agent.reply.sent": "Reply sent.",
    "agent.hold": "Hold",
    "agent.hold.reason": "Hold reason",
    "agent.hold.note": "Hold note",
    "agent.hold.submit": "Put on hold",
    "agent.hold.done": "The ticket is on hold.",
    "agent.resume": "Resume",
    "agent.resume.done": "The ticket is resumed.",
    "agent.comp": "Compensation",
    "agent.comp.kind": "Kind",
    "agent.comp.amount": "Amount",
    "agent.comp.currency": "Currency",
    "agent.comp.reason": "Why",
    "agent.comp.submit": "Grant compensation",
    "agent.comp.note": "Above your limit it waits for a supervisor's approval.",
    "agent.comp.granted": "Compensation granted.",
    "agent.comp.pending": "Above your limit: sent for a supervisor's approval.",
    "agent.comp.none": "No compensation yet",
    "enum.COMPENSATION_KIND_REFUND": "Refund",
    "enum.COMPENSATION_KIND_DISCOUNT": "Discount",
    "enum.COMPENSATION_KIND_REPLACEMENT": "Replacement",
    "enum.COMPENSATION_KIND_GIFT": "Gift",
    "enum.COMPENSATION_STATUS_PENDING": "Pending approval",
    "enum.COMPENSATION_STATUS_GRANTED": "Granted",
    "enum.COMPENSATION_STATUS_REJECTED": "Rejected",
    "agent.steps": "Complaint steps",
    "agent.steps.taken": "Done",
    "agent.steps.left": "To do",
    "agent.steps.step": "Step",
    "agent.steps.note": "Notes",
    "agent.steps.plan": "Plan",
    "agent.steps.options": "Options (one a line)",
    "agent.steps.follow_up_at": "Follow up at",
    "agent.steps.outcome": "Outcome told to the customer",
    "agent.steps.root_cause": "Root cause",
    "agent.steps.prevention": "Prevention",
    "agent.steps.shared": "Shared with the team",
    "agent.steps.submit": "Record step",
    "agent.steps.done": "Step recorded.",
    "enum.COMPLAINT_STEP_LISTEN": "Listen",
    "enum.COMPLAINT_STEP_CONFIRM": "Confirm the problem",
    "enum.COMPLAINT_STEP_APOLOGISE": "Apologise",
    "enum.COMPLAINT_STEP_SOLVE": "Solve",
    "enum.COMPLAINT_STEP_FOLLOW_UP": "Follow up",
    "enum.COMPLAINT_STEP_SUMMARISE": "Summarise",
    "agent.c360": "Customer 360",
    "agent.c360.unknown": "This customer is not in the customer profiles.",
    "agent.c360.tier": "Tier",
    "agent.c360.tags": "Tags",
    "agent.c360.csat": "Satisfaction",
    "agent.c360.csat_value": "{csat} ({surveys} surveys)",
    "agent.c360.no_surveys": "No surveys yet",
    "agent.c360.tickets": "Tickets",
    "agent.c360.open_tickets": "Open tickets",
    "agent.c360.timeline": "Timeline",
    "agent.c360.kind.registered": "registered",
    "agent.c360.kind.profile_updated": "profile",
    "agent.c360.kind.tagged": "tags",
    "agent.c360.kind.purchase": "purchase",
    "agent.c360.kind.segment": "segment",
    "agent.c360.kind.erased": "erased",
    "agent.c360.kind.incident_notified": "notified",
    "agent.c360.kind.incident_notice_failed": "notice failed",
    "agent.c360.kind.ticket_opened": "ticket opened",
    "agent.c360.kind.ticket_assigned": "assigned",
    "agent.c360.kind.customer_replied": "customer reply",
    "agent.c360.kind.agent_note": "internal note",
    "agent.c360.kind.agent_replied": "agent reply",
    "agent.c360.kind.priority_changed": "priority",
    "agent.c360.kind.ticket_escalated": "escalated",
    "agent.c360.kind.ticket_held": "on hold",
    "agent.c360.kind.ticket_resumed": "resumed",
    "agent.c360.kind.ticket_resolved": "resolved",
    "agent.c360.kind.ticket_reopened": "reopened",
    "agent.c360.kind.ticket_closed": "closed",
    "agent.c360.kind.sla_breached": "SLA breached",
    "agent.c360.kind.compensation_granted": "compensation",
    "agent.c360.kind.compensation_requested": "compensation request",
    "agent.c360.kind.compensation_rejected": "compensation rejected",
    "agent.c360.kind.incident_declared": "incident",
    "agent.c360.kind.incident_linked": "incident link",
    "agent.c360.entry.registered": "registered ({locale})",
    "agent.c360.entry.segment.churn": ", churn risk",
    "agent.c360.entry.ticket_resolved.first": " at first contact",
    "agent.c360.entry.profile_updated": "profile updated: {fields}",
    "agent.c360.entry.tagged": "tags {tags}",
    "agent.c360.entry.purchase": "purchase {order}: {amount} {currency}",
    "agent.c360.entry.segment": "segment {tier} ({scores}){churn}",
    "agent.c360.entry.erased": "personal data erased ({reason})",
    "agent.c360.entry.incident_notified": "notified about incident {incident} by {how}",
    "agent.c360.entry.incident_notice_failed": "notice about incident {incident} not sent: {error}",
    "agent.c360.entry.ticket_opened": "{type} ticket opened via {channel} ({priority} priority)",
    "agent.c360.entry.ticket_assigned": "assigned to an agent",
    "agent.c360.entry.customer_replied": "customer replied",
    "agent.c360.entry.agent_note": "agent wrote an internal note",
    "agent.c360.entry.agent_replied": "agent replied",
    "agent.c360.entry.priority_changed": "priority changed to {priority}",
    "agent.c360.entry.ticket_escalated": "escalated to level {level}",
    "agent.c360.entry.ticket_held": "on hold ({reason})",
    "agent.c360.entry.ticket_resumed": "resumed",
    "agent.c360.entry.ticket_resolved": "resolved{first}",
    "agent.c360.entry.ticket_reopened": "reopened",
    "agent.c360.entry.ticket_closed": "closed",
    "agent.c360.entry.sla_breached": "{clock} SLA breached",
    "agent.c360.entry.compensation_granted": "compensation {kind} {amount} {currency} {outcome}",
    "agent.c360.entry.compensation_requested": "compensation {kind} {amount} {currency} requested, awaiting approval",
    "agent.c360.entry.compensation_rejected": "compensation {kind} {amount} {currency} rejected",
    "agent.c360.entry.incident_declared": "affected by level {level} incident {incident} ({type})",
    "agent.c360.entry.incident_linked": "ticket linked to incident {incident}",
    "agent.c360.none": "None",
    "enum.TICKET_STATUS_OPEN": "Open",
    "enum.TICKET_STATUS_ASSIGNED": "Assigned",
    "enum.TICKET_STATUS_IN_PROGRESS": "In progress",
    "enum.TICKET_STATUS_ON_HOLD": "On hold",
    "enum.TICKET_STATUS_RESOLVED": "Resolved",
    "enum.TICKET_STATUS_CLOSED": "Closed",
    "enum.PRIORITY_URGENT": "Urgent",
    "enum.PRIORITY_HIGH": "High",
    "enum.PRIORITY_NORMAL": "Normal",
    "enum.PRIORITY_LOW": "Low",
    "enum.CHANNEL_PHONE": "Phone",
    "enum.CHANNEL_EMAIL": "Email",
    "enum.CHANNEL_CHAT": "Chat",
    "enum.CHANNEL_SOCIAL": "Social",
    "enum.CHANNEL_APP": "App",
    "enum.CHANNEL_WEB": "Web",
    "enum.CHANNEL_STORE": "Store",
    "enum.HOLD_REASON_WAITING_CUSTOMER": "Waiting for the customer",
    "enum.HOLD_REASON_WAITING_THIRD_PARTY": "Waiting for a third party",
    "enum.HOLD_REASON_WAITING_INTERNAL": "Waiting internally",
    "enum.CUSTOMER_TIER_UNSPECIFIED": "Not yet tiered",
    "enum.CUSTOMER_TIER_HIGH_VALUE": "High value",
    "enum.CUSTOMER_TIER_POTENTIAL": "Potential",
    "enum.CUSTOMER_TIER_REGULAR": "Regular",
    "enum.CUSTOMER_TIER_LOW_FREQUENCY": "Low frequency",
  },
};

// "1d 02:03:04" / "02:03:04" of a number of milliseconds.
function duration(ms) {
  const total = Math.floor(Math.abs(ms) / 1000);
  const days = Math.floor(total / 86400);
  const hms = [Math.floor((total % 86400) / 3600), Math.floor((total % 3600) / 60), total % 60]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
  return days ? `${days}d ${hms}` : hms;
}

// A clock's state, text and colour at `now`: ok / warn (past its warning: at risk) / risk
// (overdue or breached) / stopped (met or paused).
export function clockView(clock, now, t) {
  if (!clock) return { state: "none", text: "—", tone: "stopped" };
  if (clock.breached) {
    const since = clock.dueAt ? now - Date.parse(clock.dueAt) : 0;
    return { state: "breached", text: t("agent.clock.breached", { time: duration(since) }), tone: "risk" };
  }
  if (clock.met) return { state: "met", text: t("agent.clock.met"), tone: "stopped" };
  if (clock.paused) return { state: "paused", text: t("agent.clock.paused"), tone: "stopped" };
  if (!clock.running || !clock.dueAt) return { state: "stopped", text: "—", tone: "stopped" };
  const left = Date.parse(clock.dueAt) - now;
  if (left <= 0) return { state: "running", text: t("agent.clock.overdue", { time: duration(left) }), tone: "risk" };
  const warned = clock.warned || (clock.warnAt && now >= Date.parse(clock.warnAt));
  return { state: "running", text: t("agent.clock.left", { time: duration(left) }), tone: warned ? "warn" : "ok" };
}

// One customer-360 timeline entry, "kind · summary", in the reader's language.
export function c360Entry(entry) {
  return `${kindLabel("agent.c360.kind", entry.kind)} · ${translated(C360_TIMELINE, "agent.c360.entry", entry.kind, entry.summary)}`;
}

function clockOf(ticket, name) {
  return (ticket?.sla || []).find((clock) => clock.clock === name);
}

// A <span> whose text the desk's one-second tick keeps current (data-due etc. on the element).
function clockElement(clock, t, id) {
  const element = h("span", { class: "clock", id, role: "timer", "aria-live": "off" });
  element.clockData = clock;
  paint(element, t);
  return element;
}

function paint(element, t) {
  const view = clockView(element.clockData, Date.now(), t);
  element.textContent = view.text;
  element.className = `clock ${view.tone}`;
  element.dataset.state = view.state;
}

function enumText(t, value) {
  const key = `enum.${value}`;
  const text = t(key);
  return text === key ? String(value || "—").toLowerCase().replace(/_/g, " ") : text;
}

function select(id, label, options, value, onchange) {
  const control = h(
    "select",
    { id, onchange: (event) => onchange(event.target.value) },
    options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text)),
  );
  return h("label", { for: id }, label, control);
}

export default {
  id: "agent",
  title: "agent.nav",
  // Shown to roles that work tickets: reading them (on-call may) is not enough.
  requires: [`${T}/ListTickets`, `${T}/GetTicket`, `${T}/AddReply`, `${T}/HoldTicket`],
  strings,
  async render(root, ctx) {
    const { call, t, me, can, toast } = ctx;
    const queuePanel = h("section", { class: "panel", "aria-labelledby": "queue-title" });
    const ticketPanel = h("section", { class: "panel", id: "ticket", "aria-labelledby": "ticket-title" });
    const customerPanel = h("aside", { class: "panel", id: "customer-360", "aria-labelledby": "c360-title" });
    replace(root, h("h1", {}, t("agent.title")), h("div", { class: "agent-grid" }, queuePanel, ticketPanel, customerPanel));

    let alive = true;
    const tick = setInterval(() => root.querySelectorAll(".clock").forEach((element) => paint(element, t)), 1000);
    let skills = null; // the ticket types of my queue (the agent directory), once read
    let agentName = me.subject; // {agent_name} of a macro: the directory's name when there is one
    let customerShown = null; // the 360 beside the ticket: {customer_name} of a macro

    async function mySkills() {
      if (skills !== null || !can(T, "GetAgent")) return skills;
      try {
        const { agent } = await call(T, "GetAgent", { agentId: me.subject });
        agentName = agent.name || me.subject;
        skills = new Set((agent.ticketTypes || []).map((type) => `TICKET_TYPE_${type.toUpperCase()}`));
      } catch {
        skills = null; // not in the directory: the team queue is every unassigned ticket
      }
      return skills;
    }

    // One ListTickets per refresh: the summaries carry the SLA clocks, oldest first.
    async function loadQueue() {
      const request = { pageSize: 100, order: "TICKET_ORDER_OLDEST_FIRST", openOnly: true };
      if (state.priority) request.priority = state.priority;
      if (state.channel) request.channel = state.channel;
      if (state.mode === "mine") {
        request.assigneeId = me.subject;
        if (state.status) request.status = state.status;
      } else {
        request.status = "TICKET_STATUS_OPEN"; // unassigned, waiting for someone to take it
      }
      const { tickets = [] } = await call(T, "ListTickets", request);
      if (state.mode !== "team") return tickets;
      const mine = await mySkills();
      return tickets.filter((ticket) => !ticket.assigneeId && (!mine || mine.has(ticket.type)));
    }

    async function renderQueue() {
      const modes = h(
        "div",
        { class: "row", role: "group", "aria-label": t("agent.queues") },
        ["mine", "team"].map((mode) =>
          h(
            "button",
            {
              type: "button",
              class: state.mode === mode ? "" : "secondary",
              "aria-pressed": String(state.mode === mode),
              onclick: () => {
                state.mode = mode;
                renderQueue();
              },
            },
            t(`agent.${mode}`),
          ),
        ),
      );
      const any = ["", t("agent.filter.any")];
      const filters = h(
        "div",
        { class: "filters" },
        state.mode === "mine"
          ? select("filter-status", t("agent.filter.status"), [any, ...OPEN_STATUSES.map((s) => [s, enumText(t, s)])], state.status, (value) => {
              state.status = value;
              renderQueue();
            })
          : null,
        select("filter-priority", t("agent.filter.priority"), [any, ...PRIORITIES.map((p) => [p, enumText(t, p)])], state.priority, (value) => {
          state.priority = value;
          renderQueue();
        }),
        select("filter-channel", t("agent.filter.channel"), [any, ...CHANNELS.map((c) => [c, enumText(t, c)])], state.channel, (value) => {
          state.channel = value;
          renderQueue();
        }),
        h("button", { type: "button", class: "secondary", onclick: () => renderQueue() }, t("agent.refresh")),
      );
      const body = h("tbody");
      const table = h(
        "table",
        { id: "queue", "aria-labelledby": "queue-title", "aria-busy": "true" },
        h("thead", {}, h("tr", {}, [t("agent.col.ticket"), t("agent.col.priority"), t("agent.col.opened"), t("agent.col.first_response")].map((text) => h("th", { scope: "col" }, text)))),
        body,
      );
      replace(queuePanel, h("h2", { id: "queue-title" }, t(`agent.${state.mode}`)), modes, filters, table);
      const tickets = await loadQueue();
      if (!alive) return;
      replace(
        body,
        tickets.length === 0
          ? h("tr", {}, h("td", { colspan: 4 }, t("agent.empty")))
          : tickets.map((ticket) =>
              h(
                "tr",
                { class: ticket.ticketId === state.selected ? "selected" : "", dataset: { ticketId: ticket.ticketId } },
                h(
                  "td",
                  {},
                  h(
                    "button",
                    {
                      type: "button",
                      class: "secondary",
                      "aria-label": t("agent.open", { subject: ticket.subject }),
                      onclick: () => openTicket(ticket.ticketId),
                    },
                    ticket.subject,
                  ),
                  h("div", { class: "meta" }, ticket.ticketId),
                ),
                h("td", {}, enumText(t, ticket.priority)),
                h("td", {}, formatTime(ticket.createdAt)),
                h("td", {}, clockElement(clockOf(ticket, "SLA_CLOCK_FIRST_RESPONSE"), t)),
              ),
            ),
      );
      table.setAttribute("aria-busy", "false");
    }

    async function loadConversation(ticketId, minSequence) {
      const request = { ticketId, pageSize: 200 };
      if (minSequence) request.minSequence = minSequence;
      const { messages = [] } = await call(T, "GetConversation", request);
      return messages;
    }

    function author(message) {
      if (message.author === "AUTHOR_CUSTOMER") return t("agent.author.customer");
      if (message.author === "AUTHOR_AGENT") return `${t("agent.author.agent")} ${message.authorId}`;
      return `${t("agent.author.system")} · ${message.kind}`;
    }

    function conversationList(messages) {
      return h(
        "ol",
        { class: "conversation", id: "conversation", "aria-label": t("agent.conversation"), tabindex: "0" },
        messages.map((message) =>
          h(
            "li",
            { class: message.author === "AUTHOR_CUSTOMER" ? "customer" : message.author === "AUTHOR_AGENT" ? "agent" : "" },
            h("div", { class: "meta" }, `${author(message)} · ${formatTime(message.at)}`, message.visibility === "VISIBILITY_INTERNAL" ? ` · ${t("agent.reply.internal")}` : ""),
            message.subject ? h("strong", {}, message.subject) : null,
            h("div", { class: "body" }, message.body),
          ),
        ),
      );
    }

    // After a command: the ticket it returned, and the conversation once it has the command.
    async function applied(response, message) {
      toast(message);
      await showTicket(response.ticket, response.sequence);
      renderQueue();
    }

    async function command(method, body, message) {
      try {
        const response = await call(T, method, body, { idempotencyKey: newKey() });
        await applied(response, message);
      } catch (failure) {
        const key = failure.code === Code.PERMISSION_DENIED ? "error.denied" : "error.generic";
        toast(t(key, { message: failure.message }));
      }
    }

    function replyForm(ticket, macros) {
      const macroSelect = h(
        "select",
        { id: "reply-macro", name: "macro" },
        h("option", { value: "" }, t("agent.macro.none")),
        macros.map((macro) => h("option", { value: macro.macroId }, macro.title)),
      );
      const text = h("textarea", { id: "reply-body", name: "body", rows: 4 });
      const internal = h("input", { type: "checkbox", id: "reply-internal" });
      // The values a macro's placeholders take that the ticket does not hold (ticket_id and
      // product the service fills in itself); only those its body uses are sent.
      const values = () => ({
        customer_name: customerShown?.profile?.name || ticket.customerId,
        agent_name: agentName,
      });
      const chosen = () => macros.find((candidate) => candidate.macroId === macroSelect.value);
      macroSelect.addEventListener("change", () => {
        const macro = chosen();
        // A preview; the reply's text is the service's rendering of the macro.
        const all = { ...values(), ticket_id: ticket.ticketId, product: ticket.product || "" };
        text.value = macro ? macro.body.replace(/\{(\w+)\}/g, (whole, name) => all[name] ?? whole) : "";
        text.readOnly = Boolean(macro);
      });
      const form = h(
        "form",
        { class: "stack", "aria-labelledby": "reply-title" },
        h("h3", { id: "reply-title" }, t("agent.reply")),
        macros.length ? h("label", { for: "reply-macro" }, t("agent.macro"), macroSelect) : null,
        h("label", { for: "reply-body" }, t("agent.reply.body"), text),
        h("label", { for: "reply-internal", class: "check" }, internal, t("agent.reply.internal")),
        h("button", { type: "submit" }, t("agent.reply.send")),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const request = { ticketId: ticket.ticketId, author: "AUTHOR_AGENT", authorId: me.subject };
        const macro = chosen();
        if (macro) {
          request.macroId = macro.macroId;
          const used = new Set([...macro.body.matchAll(/\{(\w+)\}/g)].map((match) => match[1]));
          request.macroValues = Object.fromEntries(Object.entries(values()).filter(([name]) => used.has(name)));
        } else {
          request.body = text.value;
        }
        if (internal.checked) request.visibility = "VISIBILITY_INTERNAL";
        await command("AddReply", request, t("agent.reply.sent"));
      });
      return form;
    }

    function holdControls(ticket) {
      if (ticket.status === "TICKET_STATUS_ON_HOLD") {
        if (!can(T, "ResumeTicket")) return null;
        return h(
          "div",
          { class: "row" },
          h("span", {}, `${enumText(t, ticket.status)}: ${enumText(t, ticket.holdReason)}`),
          h("button", { type: "button", onclick: () => command("ResumeTicket", { ticketId: ticket.ticketId }, t("agent.resume.done")) }, t("agent.resume")),
        );
      }
      if (!can(T, "HoldTicket")) return null;
      const reason = h("select", { id: "hold-reason" }, HOLD_REASONS.map((value) => h("option", { value }, enumText(t, value))));
      const note = h("input", { id: "hold-note", type: "text" });
      const form = h(
        "form",
        { class: "row", "aria-labelledby": "hold-title" },
        h("h3", { id: "hold-title" }, t("agent.hold")),
        h("label", { for: "hold-reason" }, t("agent.hold.reason"), reason),
        h("label", { for: "hold-note" }, t("agent.hold.note"), note),
        h("button", { type: "submit", class: "secondary" }, t("agent.hold.submit")),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        await command("HoldTicket", { ticketId: ticket.ticketId, reason: reason.value, note: note.value }, t("agent.hold.done"));
      });
      return form;
    }

    // Compensation within my limit (GrantCompensation): above it the service records it pending
    // for a supervisor (compensation policy); the page says which it was.
    function compensationPanel(ticket) {
      if (!can(T, "GrantCompensation")) return null;
      const granted = ticket.compensations || [];
      const kind = h("select", { id: "comp-kind" }, COMPENSATION_KINDS.map((value) => h("option", { value }, enumText(t, value))));
      const amount = h("input", { id: "comp-amount", type: "text", inputmode: "decimal", required: true, pattern: "[0-9]+([.][0-9]{1,2})?", size: 8 });
      const currency = h("input", { id: "comp-currency", type: "text", value: "CNY", required: true, size: 4, pattern: "[A-Z]{3}" });
      const reason = h("input", { id: "comp-reason", type: "text", required: true });
      const form = h(
        "form",
        { class: "stack", "aria-labelledby": "comp-title" },
        h("h3", { id: "comp-title" }, t("agent.comp")),
        granted.length
          ? h("ul", { id: "compensations" }, granted.map((c) => h("li", {}, `${enumText(t, c.kind)} ${c.amount} ${c.currency} · ${enumText(t, c.status)} · ${c.reason}`)))
          : h("p", {}, t("agent.comp.none")),
        h(
          "div",
          { class: "row" },
          h("label", { for: "comp-kind" }, t("agent.comp.kind"), kind),
          h("label", { for: "comp-amount" }, t("agent.comp.amount"), amount),
          h("label", { for: "comp-currency" }, t("agent.comp.currency"), currency),
          h("label", { for: "comp-reason" }, t("agent.comp.reason"), reason),
        ),
        h("p", { class: "meta" }, t("agent.comp.note")),
        h("button", { type: "submit", class: "secondary" }, t("agent.comp.submit")),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          const body = { ticketId: ticket.ticketId, kind: kind.value, amount: amount.value, currency: currency.value, reason: reason.value };
          const response = await call(T, "GrantCompensation", body, { idempotencyKey: newKey() });
          const pending = response.compensation?.status === "COMPENSATION_STATUS_PENDING";
          await applied(response, t(pending ? "agent.comp.pending" : "agent.comp.granted"));
        } catch (failure) {
          toast(t("error.generic", { message: failure.message }));
        }
      });
      return form;
    }

    // The complaint steps (RecordComplaintStep), for a complaint ticket: the steps taken, the
    // ones left, and a form whose fields are the chosen step's (the service checks each).
    const STEP_FIELDS = {
      COMPLAINT_STEP_LISTEN: ["note"],
      COMPLAINT_STEP_CONFIRM: ["note"],
      COMPLAINT_STEP_APOLOGISE: ["note"],
      COMPLAINT_STEP_SOLVE: ["plan", "options", "follow_up_at"],
      COMPLAINT_STEP_FOLLOW_UP: ["outcome"],
      COMPLAINT_STEP_SUMMARISE: ["root_cause", "prevention", "shared"],
    };
    function complaintPanel(ticket) {
      if (ticket.type !== "TICKET_TYPE_COMPLAINT" || !can(T, "RecordComplaintStep")) return null;
      const left = ticket.complaintStepsLeft || [];
      const taken = ticket.complaintSteps || [];
      const step = h("select", { id: "step-kind" }, (left.length ? left : Object.keys(STEP_FIELDS)).map((value) => h("option", { value }, enumText(t, value))));
      const controls = {
        note: h("textarea", { id: "step-note", rows: 2 }),
        plan: h("textarea", { id: "step-plan", rows: 2 }),
        options: h("textarea", { id: "step-options", rows: 2 }),
        follow_up_at: h("input", { id: "step-follow_up_at", type: "datetime-local" }),
        outcome: h("textarea", { id: "step-outcome", rows: 2 }),
        root_cause: h("input", { id: "step-root_cause", type: "text" }),
        prevention: h("input", { id: "step-prevention", type: "text" }),
        shared: h("input", { id: "step-shared", type: "checkbox" }),
      };
      const fields = Object.fromEntries(
        Object.entries(controls).map(([name, control]) => [
          name,
          h("label", { for: control.id, class: name === "shared" ? "check" : "" }, name === "shared" ? [control, t("agent.steps.shared")] : [t(`agent.steps.${name}`), control]),
        ]),
      );
      const show = () => Object.entries(fields).forEach(([name, field]) => (field.hidden = !(STEP_FIELDS[step.value] || []).includes(name)));
      step.addEventListener("change", show);
      show();
      const form = h(
        "form",
        { class: "stack", "aria-labelledby": "steps-title" },
        h("h3", { id: "steps-title" }, t("agent.steps")),
        h("p", { id: "steps-taken" }, `${t("agent.steps.taken")}: `, taken.map((done) => enumText(t, done.step)).join(" → ") || "—"),
        h("p", { id: "steps-left" }, `${t("agent.steps.left")}: `, left.map((value) => enumText(t, value)).join(" → ") || "—"),
        left.length ? [h("label", { for: "step-kind" }, t("agent.steps.step"), step), Object.values(fields), h("button", { type: "submit", class: "secondary" }, t("agent.steps.submit"))] : null,
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const wanted = STEP_FIELDS[step.value] || [];
        const body = { ticketId: ticket.ticketId, step: step.value };
        const camel = (name) => name.replace(/_(\w)/g, (_, c) => c.toUpperCase());
        for (const name of wanted) {
          const control = controls[name];
          if (name === "shared") body.shared = control.checked;
          else if (name === "options") body.options = control.value.split("\n").map((o) => o.trim()).filter(Boolean);
          else if (name === "follow_up_at") body.followUpAt = control.value ? new Date(control.value).toISOString() : undefined;
          else body[camel(name)] = control.value;
        }
        await command("RecordComplaintStep", body, t("agent.steps.done"));
      });
      return form;
    }

    async function showTicket(ticket, minSequence) {
      state.selected = ticket.ticketId;
      queuePanel.querySelectorAll("tr[data-ticket-id]").forEach((row) => row.classList.toggle("selected", row.dataset.ticketId === ticket.ticketId));
      const [messages, macros] = await Promise.all([
        loadConversation(ticket.ticketId, minSequence),
        can(T, "ListMacros") ? call(T, "ListMacros", {}).then((r) => r.macros || []) : [],
      ]);
      if (!alive || state.selected !== ticket.ticketId) return;
      const open = OPEN_STATUSES.includes(ticket.status);
      const take =
        !ticket.assigneeId && can(T, "AssignTicket")
          ? h("button", { type: "button", onclick: () => command("AssignTicket", { ticketId: ticket.ticketId, agentId: me.subject }, t("agent.take")) }, t("agent.take"))
          : null;
      replace(
        ticketPanel,
        h("h2", { id: "ticket-title" }, ticket.subject),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, t("agent.ticket")),
          h("dd", {}, ticket.ticketId),
          h("dt", {}, t("agent.status")),
          h("dd", { id: "ticket-status" }, enumText(t, ticket.status)),
          h("dt", {}, t("agent.col.priority")),
          h("dd", {}, `${enumText(t, ticket.priority)} · ${enumText(t, ticket.channel)}`),
          h("dt", {}, t("agent.assignee")),
          h("dd", {}, ticket.assigneeId || t("agent.unassigned"), " ", take),
          h("dt", {}, t("agent.clock.first_response")),
          h("dd", {}, clockElement(clockOf(ticket, "SLA_CLOCK_FIRST_RESPONSE"), t, "ticket-first-response")),
          h("dt", {}, t("agent.clock.resolution")),
          h("dd", {}, clockElement(clockOf(ticket, "SLA_CLOCK_RESOLUTION"), t, "ticket-resolution")),
        ),
        h("h3", {}, t("agent.conversation")),
        conversationList(messages),
        open && can(T, "AddReply") ? replyForm(ticket, macros) : null,
        open ? holdControls(ticket) : null,
        open ? complaintPanel(ticket) : null,
        open ? compensationPanel(ticket) : null,
      );
      showCustomer(ticket.customerId);
    }

    async function openTicket(ticketId) {
      const { ticket } = await call(T, "GetTicket", { ticketId });
      await showTicket(ticket);
      ticketPanel.querySelector("#ticket-title")?.setAttribute("tabindex", "-1");
      ticketPanel.querySelector("#ticket-title")?.focus();
    }

    // The customer 360 beside the ticket, kept current: WatchCustomer360 pushes the view at once
    // and whenever it changes (a reply, a survey, a tag…), through api.js `watch`; reconnected
    // when it drops. One watch at a time: another ticket's customer replaces it. Without the
    // watch permission: one GetCustomer360.
    let watching = null; // {customerId, controller}
    async function showCustomer(customerId) {
      if (watching && watching.customerId === customerId && !watching.controller.signal.aborted) return;
      watching?.controller.abort();
      watching = null;
      customerShown = null;
      const title = h("h2", { id: "c360-title" }, t("agent.c360"));
      if (!customerId || !can(C, "GetCustomer360")) {
        replace(customerPanel, title, h("p", {}, t("agent.c360.none")));
        return;
      }
      const unknown = (failure) => {
        if (failure.code !== Code.NOT_FOUND) throw failure;
        replace(customerPanel, title, h("p", {}, t("agent.c360.unknown")));
      };
      const query = { customerId, timelineLimit: 10 };
      if (!can(C, "WatchCustomer360")) {
        await call(C, "GetCustomer360", query).then(({ view }) => renderCustomer(customerId, view), unknown);
        return;
      }
      const controller = new AbortController();
      watching = { customerId, controller };
      for (let attempt = 0; alive && !controller.signal.aborted; attempt += 1) {
        try {
          await watch(C, "WatchCustomer360", { query }, {
            signal: controller.signal,
            onOpen: () => (attempt = 0),
            onMessage: ({ view }) => alive && !controller.signal.aborted && renderCustomer(customerId, view),
          });
        } catch (failure) {
          if (controller.signal.aborted) return;
          if (failure instanceof ApiError && REFUSED.includes(failure.code)) {
            controller.abort(); // refused, not dropped: say so and stop
            return unknown(failure);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)]));
      }
    }

    function renderCustomer(customerId, view) {
      const title = h("h2", { id: "c360-title" }, t("agent.c360"));
      const customer = view.customer || {};
      customerShown = customer;
      const satisfaction = view.satisfaction || {};
      const none = t("agent.c360.none");
      replace(
        customerPanel,
        title,
        h("p", { id: "c360-name" }, h("strong", {}, customer.profile?.name || customerId), " · ", customerId),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, t("agent.c360.tier")),
          h("dd", { id: "c360-tier" }, enumText(t, customer.tier)),
          h("dt", {}, t("agent.c360.tags")),
          h("dd", {}, (customer.tags || []).length ? h("ul", { class: "tags" }, customer.tags.map((tag) => h("li", {}, tag))) : none),
          h("dt", {}, t("agent.c360.csat")),
          h(
            "dd",
            { id: "c360-csat" },
            satisfaction.surveys ? t("agent.c360.csat_value", { csat: Number(satisfaction.averageCsat).toFixed(1), surveys: satisfaction.surveys }) : t("agent.c360.no_surveys"),
          ),
          h("dt", {}, t("agent.c360.tickets")),
          h("dd", {}, String(view.ticketCount ?? 0)),
        ),
        h("h3", {}, t("agent.c360.open_tickets")),
        (view.openTickets || []).length
          ? h("ul", { id: "c360-open" }, view.openTickets.map((open) => h("li", {}, `${open.ticketId} · ${open.status} · ${formatTime(open.openedAt)}`)))
          : h("p", {}, none),
        h("h3", {}, t("agent.c360.timeline")),
        (view.timeline || []).length
          ? h("ol", { id: "c360-timeline" }, view.timeline.map((entry) => h("li", { dataset: { kind: entry.kind } }, `${formatTime(entry.at)} · ${c360Entry(entry)}`)))
          : h("p", {}, none),
      );
    }

    replace(ticketPanel, h("h2", { id: "ticket-title" }, t("agent.ticket")), h("p", {}, t("agent.none_selected")));
    replace(customerPanel, h("h2", { id: "c360-title" }, t("agent.c360")), h("p", {}, t("agent.c360.none")));
    await renderQueue();
    if (state.selected) await openTicket(state.selected).catch(() => (state.selected = ""));
    return () => {
      alive = false;
      watching?.controller.abort();
      clearInterval(tick);
    };
  },
};
