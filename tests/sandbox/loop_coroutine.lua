-- Hostile: loop inside a coroutine (hooks are per coroutine).
coroutine.wrap(function() while true do end end)()
