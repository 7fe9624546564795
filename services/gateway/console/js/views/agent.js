// The agent view (issue 15): my queue. Filled in by the next commits.
import { Services } from "../api.js";
import { h, replace } from "../dom.js";

export default {
  id: "agent",
  title: "agent.nav",
  // Shown to roles that work tickets: reading them (on-call may) is not enough.
  requires: [`${Services.ticketing}/ListTickets`, `${Services.ticketing}/AddReply`, `${Services.ticketing}/HoldTicket`],
  strings: {
    zh: { "agent.nav": "坐席工作台", "agent.title": "我的队列", "agent.empty": "队列为空。" },
    en: { "agent.nav": "Agent desk", "agent.title": "My queue", "agent.empty": "The queue is empty." },
  },
  async render(root, { call, t, me }) {
    const list = h("ul", { id: "my-queue" });
    replace(root, h("h1", {}, t("agent.title")), list);
    const { tickets = [] } = await call(Services.ticketing, "ListTickets", { assigneeId: me.subject });
    replace(list, tickets.length ? tickets.map((ticket) => h("li", {}, ticket.subject)) : h("li", {}, t("agent.empty")));
  },
};
