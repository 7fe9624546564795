// Every view of the console, in navigation order. Adding a view: its module in this folder,
// one import and one entry below (docs/console.md, "Adding a view").
import agent from "./agent.js";
import oncall from "./oncall.js";
import supervisor from "./supervisor.js";

export default [agent, supervisor, oncall];
