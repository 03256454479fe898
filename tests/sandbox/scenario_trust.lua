-- Hostile: ask the scenario runner for a trusted environment (full io).
local env = sp.scenario.sandbox_env(sp, true)
env.io.open("/tmp/spillover-sandbox-pwned-trust", "w"):write("pwned")
