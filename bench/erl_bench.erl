%% Erlang distribution side of `make bench` (compiled by bench/run.lua with erlc into a
%% temporary directory). Every node runs member/0: it monitors nodes and prints
%% "EVENT node_up|node_down NAME" as it learns of them (the driver stamps each line on
%% arrival), connects to the nodes named on the command line (-extra), and serves:
%%   echo:    replies {echo, X} to {From, X}            (RPC round trip)
%%   counter: counts messages; {From, get} answers the count (one-way throughput)
%% load/0 runs on the measuring node: it times round trips and a burst of `!` and prints
%% RESULT lines, then halts.
-module(erl_bench).
-export([member/0, load/0]).

peers() -> [list_to_atom(A) || A <- init:get_plain_arguments()].

member() ->
    ok = net_kernel:monitor_nodes(true),
    register(echo, spawn(fun echo/0)),
    register(counter, spawn(fun() -> counter(0) end)),
    [net_kernel:connect_node(P) || P <- peers()],
    io:format("READY~n"),
    events().

events() ->
    receive
        {nodeup, N} -> io:format("EVENT node_up ~s~n", [N]);
        {nodedown, N} -> io:format("EVENT node_down ~s~n", [N]);
        _ -> ok
    end,
    events().

echo() ->
    receive {From, X} -> From ! {echo, X} end,
    echo().

counter(N) ->
    receive
        {From, get} -> From ! {count, N}, counter(N);
        {msg, _} -> counter(N + 1)
    end.

load() ->
    [Peer | _] = peers(),
    true = net_kernel:connect_node(Peer),
    timer:sleep(200),
    N = list_to_integer(os:getenv("BENCH_RPC_N", "20000")),
    Msg = #{op => <<"ping">>, n => 1},
    [rt(Peer, Msg) || _ <- lists:seq(1, 1000)],
    Ts = lists:sort([rt(Peer, Msg) || _ <- lists:seq(1, N)]),
    io:format("RESULT erl_rtt_us median=~.1f min=~.1f max=~.1f n=~b~n",
              [lists:nth(N div 2 + 1, Ts), hd(Ts), lists:last(Ts), N]),
    M = list_to_integer(os:getenv("BENCH_SEND_N", "200000")),
    {counter, Peer} ! {self(), get},
    C0 = receive {count, X} -> X end,
    T0 = erlang:monotonic_time(nanosecond),
    send_n({counter, Peer}, {msg, #{op => <<"put">>, key => <<"k">>, value => 42}}, M),
    wait_count(Peer, C0 + M),
    T1 = erlang:monotonic_time(nanosecond),
    io:format("RESULT erl_send_rate per_s=~b n=~b~n", [round(M * 1.0e9 / (T1 - T0)), M]),
    halt(0).

rt(Peer, Msg) ->
    T0 = erlang:monotonic_time(nanosecond),
    {echo, Peer} ! {self(), Msg},
    receive {echo, _} -> ok end,
    (erlang:monotonic_time(nanosecond) - T0) / 1000.

send_n(_, _, 0) -> ok;
send_n(To, Msg, K) -> To ! Msg, send_n(To, Msg, K - 1).

wait_count(Peer, Want) ->
    {counter, Peer} ! {self(), get},
    receive {count, C} when C >= Want -> ok; {count, _} -> timer:sleep(1), wait_count(Peer, Want) end.
