-- wrk script: POST a fixed JSON body with extra headers, print one machine-readable result line.
-- Copied from the shared peers harness; one addition: the "@N@" counter below.
-- Environment: BENCH_BODY_FILE (path of the request body), BENCH_HEADERS ("Name: value" lines, optional),
--              BENCH_EXPECT (substring every 2xx body must contain, optional; costs some wrk CPU)
-- Usage: BENCH_BODY_FILE=body.json wrk -t1 -c16 -d10s --timeout 30s -s wrk_post.lua http://127.0.0.1:28080/v1/chat/completions
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
    local k, v = line:match("^%s*([^:]+):%s*(.-)%s*$")
    if k then wrk.headers[k] = v end
end

-- Every request its own prompt (as real traffic: no cache answers for us): "@N@" in the body
-- becomes a number unique to this thread and request.
local template = wrk.body
if string.find(template, "@N@", 1, true) then
    local prefix = string.match(tostring({}), "0x(%x+)") or "0"
    local n = 0
    function request()
        n = n + 1
        return wrk.format(nil, nil, nil, (string.gsub(template, "@N@", prefix .. "-" .. n)))
    end
end

-- Optional body check: BENCH_EXPECT is a plain substring every 2xx body must contain (counted in "bad_body").
local expect = os.getenv("BENCH_EXPECT")
if expect == "" then expect = nil end
local threads = {}
function setup(thread)
    table.insert(threads, thread)
end
bad = 0
if expect then
    function response(status, headers, body)
        if status < 300 and not string.find(body, expect, 1, true) then
            bad = bad + 1
            if bad == 1 then io.stderr:write("BENCH_BAD_BODY " .. string.sub(body, 1, 300) .. "\n") end
        end
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    local nbad = 0
    for _, t in ipairs(threads) do nbad = nbad + (t:get("bad") or 0) end
    io.write(string.format(
        'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
        '"err_status":%d,"err_timeout":%d,"bad_body":%d,"lat_min_us":%d,"lat_mean_us":%.1f,"lat_max_us":%d,' ..
        '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout, nbad,
        latency.min, latency.mean, latency.max,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
