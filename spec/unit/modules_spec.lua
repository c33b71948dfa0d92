-- The shape of the Lua modules: require runs one way (no cycle, lazy requires
-- included), the public API is exactly the documented list, and the control loop's
-- reports reach their handlers because node.start is handed them, not because some
-- module happened to be required.
local uv = require "uv"

local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/unit/[^/]*$")) or uv.cwd()
if ROOT:sub(1, 1) ~= "/" then ROOT = uv.cwd() .. "/" .. ROOT end
local LUA = ROOT .. "/lua"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read "*a"
  f:close()
  return s
end

-- every module under lua/clusterlua: name -> path
local function modules()
  local out = {}
  local function walk(dir, prefix)
    local req = assert(uv.fs_scandir(dir))
    while true do
      local name, kind = uv.fs_scandir_next(req)
      if not name then break end
      if kind == "directory" then
        walk(dir .. "/" .. name, prefix .. "." .. name)
      elseif name:match "%.lua$" then
        local mod = name == "init.lua" and prefix or prefix .. "." .. name:gsub("%.lua$", "")
        out[mod] = dir .. "/" .. name
      end
    end
  end
  walk(LUA .. "/clusterlua", "clusterlua")
  return out
end

-- A line without its comment: the first "--" outside a string literal.
local function strip_comment(line)
  local quote
  local i = 1
  while i <= #line do
    local c = line:sub(i, i)
    if quote then
      if c == "\\" then i = i + 1 elseif c == quote then quote = nil end
    elseif c == '"' or c == "'" then
      quote = c
    elseif line:sub(i, i + 1) == "--" then
      return line:sub(1, i - 1)
    end
    i = i + 1
  end
  return line
end

-- Every module a file names in a require, wherever it is (top level or inside a
-- function: a lazy require is still a dependency, and the usual way a cycle hides).
local function static_requires(path)
  local out = {}
  local src = read(path):gsub("%-%-%[(=*)%[.-%]%1%]", "") -- block comments
  for line in (src .. "\n"):gmatch "([^\n]*)\n" do
    line = strip_comment(line)
    for name in line:gmatch "require%s*%(?%s*[\"']([%w_%.]+)[\"']" do out[name] = true end
    for name in line:gmatch "pcall%s*%(%s*require%s*,%s*[\"']([%w_%.]+)[\"']" do out[name] = true end
  end
  return out
end

-- Loads each module afresh under a require that records who required whom.
local function traced_requires(mods)
  local saved = {}
  for name in pairs(mods) do saved[name] = package.loaded[name] end
  local edges = {}
  local stack = {}
  local real = require
  local function tracing(name)
    local from = stack[#stack]
    if from then
      edges[from] = edges[from] or {}
      edges[from][name] = true
    end
    stack[#stack + 1] = name
    local ok, res = pcall(real, name)
    stack[#stack] = nil
    if not ok then error(res, 0) end
    return res
  end
  local errors = {}
  _G.require = tracing
  for name in pairs(mods) do
    for m in pairs(mods) do package.loaded[m] = nil end
    local ok, err = pcall(tracing, name)
    if not ok then errors[#errors + 1] = name .. ": " .. tostring(err) end
  end
  _G.require = real
  for name in pairs(mods) do package.loaded[name] = saved[name] end
  return edges, errors
end

-- A cycle in graph (module -> set of modules), as a list "a -> b -> a", or nil.
local function find_cycle(graph)
  local state, path = {}, {}
  local function visit(n)
    state[n] = "open"
    path[#path + 1] = n
    local next_names = {}
    for m in pairs(graph[n] or {}) do next_names[#next_names + 1] = m end
    table.sort(next_names)
    for _, m in ipairs(next_names) do
      if state[m] == "open" then
        local cycle, on = {}, false
        for _, p in ipairs(path) do
          if p == m then on = true end
          if on then cycle[#cycle + 1] = p end
        end
        cycle[#cycle + 1] = m
        return table.concat(cycle, " -> ")
      elseif not state[m] then
        local c = visit(m)
        if c then return c end
      end
    end
    path[#path] = nil
    state[n] = "done"
  end
  local names = {}
  for n in pairs(graph) do names[#names + 1] = n end
  table.sort(names)
  for _, n in ipairs(names) do
    if not state[n] then
      local c = visit(n)
      if c then return c end
    end
  end
end

describe("lua/clusterlua modules", function()
  local mods = modules()

  it("finds the modules it checks", function()
    for _, m in ipairs { "clusterlua", "clusterlua.scheduler", "clusterlua.events", "clusterlua.start",
      "clusterlua.reload", "clusterlua.cluster", "clusterlua.node", "clusterlua.strategy.gossip" } do
      assert.truthy(mods[m], m)
    end
  end)

  it("require one another without a cycle, counting lazy requires inside functions", function()
    local graph = {}
    for name, path in pairs(mods) do
      graph[name] = {}
      for dep in pairs(static_requires(path)) do
        if mods[dep] then graph[name][dep] = true end
      end
    end
    assert.is_nil(find_cycle(graph))
  end)

  it("load one by one, and the requires they run when loaded form no cycle", function()
    local edges, errors = traced_requires(mods)
    assert.same({}, errors)
    local graph = {}
    for from, tos in pairs(edges) do
      if mods[from] then
        graph[from] = {}
        for to in pairs(tos) do
          if mods[to] then graph[from][to] = true end
        end
      end
    end
    assert.is_nil(find_cycle(graph))
    -- the tracer sees requires at all: init.lua loads the node and the cluster
    assert.truthy(graph["clusterlua"]["clusterlua.node"])
    assert.truthy(graph["clusterlua"]["clusterlua.cluster"])
  end)

  it("the cycle check finds a cycle when there is one", function()
    assert.equal("a -> b -> c -> a", find_cycle { a = { b = true }, b = { c = true }, c = { a = true } })
    assert.is_nil(find_cycle { a = { b = true }, b = { c = true }, c = {} })
  end)

  it("find lazy requires and skip commented ones", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('local a = require "x.a"\n',
      'local function g() return require("x.b"), pcall(require, "x.c") end\n',
      '-- require "x.d"\n',
      'local s = "--" .. require "x.e" -- require "x.f"\n',
      '--[[ require "x.g" ]]\n')
    f:close()
    local got = static_requires(path)
    os.remove(path)
    assert.same({ ["x.a"] = true, ["x.b"] = true, ["x.c"] = true, ["x.e"] = true }, got)
  end)
end)

describe("require 'clusterlua'", function()
  it("exports exactly the functions docs/lua-api.md documents", function()
    local documented = {}
    for name in read(ROOT .. "/docs/lua-api.md"):gmatch "`cl%.([%a_][%w_]*)" do documented[name] = true end
    local exported = {}
    for name in pairs(require "clusterlua") do exported[name] = true end
    local missing, undocumented = {}, {}
    for name in pairs(documented) do
      if not exported[name] then missing[#missing + 1] = name end
    end
    for name in pairs(exported) do
      if not documented[name] then undocumented[#undocumented + 1] = name end
    end
    table.sort(missing)
    table.sort(undocumented)
    assert.same({ missing = {}, undocumented = {} }, { missing = missing, undocumented = undocumented })
    -- the list is not empty by accident: the documented core is there
    for _, name in ipairs { "on", "call", "spawn", "start", "tcp_connect", "dns", "voting", "version" } do
      assert.truthy(exported[name], name)
    end
  end)

  it("exports the TCP connect as tcp_connect, and the node's connect as connect", function()
    local cl = require "clusterlua"
    assert.equal(require("clusterlua.async").connect, cl.tcp_connect)
    assert.equal(require("clusterlua.node").connect, cl.connect)
  end)
end)

describe("the control loop's reports", function()
  local node = require "clusterlua.node"

  -- every kind runtime/lua/lua_node.c pushes to Lua
  local function c_kinds()
    local src = read(ROOT .. "/runtime/lua/lua_node.c")
    local body = assert(src:match "\nvoid cl_lua_node_events%(.-\n}\n", "cl_lua_node_events in lua_node.c")
    local out = {}
    -- the kind is the first value pushed for each event: the literals of the pushes
    for args in body:gmatch "lua_push%a+%(L, ([^;]*)%);" do
      for kind in args:gmatch '"([%l_]+)"' do out[kind] = true end
    end
    return out
  end

  it("are all handled by the node itself or by a handler node.start requires", function()
    local kinds = c_kinds()
    assert.truthy(kinds.up and kinds.master and kinds.reload, "the scan of lua_node.c found the report kinds")
    local required = {}
    for _, k in ipairs(node.report_kinds) do required[k] = true end
    local own = { up = true, down = true, msg = true, data = true, shutdown = true, keyring = true }
    for kind in pairs(kinds) do
      assert.truthy(own[kind] or required[kind], kind)
    end
  end)

  it("cannot be started without a handler for each: none is lost for want of a require", function()
    assert.has_error(function() node.start({}, {}) end,
      'bad argument #2 (reports): expected a function for "master"')
    local reports = {}
    for _, k in ipairs(node.report_kinds) do reports[k] = function() end end
    reports.reload = nil
    assert.has_error(function() node.start({}, reports) end,
      'bad argument #2 (reports): expected a function for "reload"')
    reports.reload = function() end
    reports.up = function() end
    assert.has_error(function() node.start({}, reports) end,
      'bad argument #2 (reports): "up" is handled by the node itself')
  end)

  it("are handed to node.start by start.lua from cluster.lua and reload.lua", function()
    local cluster = require "clusterlua.cluster"
    for _, k in ipairs(node.report_kinds) do
      if k ~= "reload" then assert.is_function(cluster.reports[k], k) end
    end
    assert.is_function(require("clusterlua.reload").on_admin_request)
  end)
end)
