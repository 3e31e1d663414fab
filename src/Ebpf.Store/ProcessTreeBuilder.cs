using Ebpf.Api.V1;
using Google.Protobuf.WellKnownTypes;

namespace Ebpf.Store;

/// <summary>
/// Folds a session's node events (exec, fork, exit, connect, file open) into one <see cref="ProcessNode"/> per process
/// key, ordered parents before children with the session's root first.
/// </summary>
internal sealed class ProcessTreeBuilder(int maxActivitiesPerProcess)
{
    private readonly Dictionary<string, ProcessNode> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _startNs = new(StringComparer.Ordinal);

    /// <summary>Adds one event; events must come in journal (sequence) order so the last exec names the image.</summary>
    public void Add(NodeEvent nodeEvent, Timestamp? recordTime)
    {
        var time = nodeEvent.Time ?? recordTime;
        switch (nodeEvent.DetailsCase)
        {
            case NodeEvent.DetailsOneofCase.Exec:
            {
                var node = NodeFor(nodeEvent.ProcessKey, nodeEvent.Pid);
                var exec = nodeEvent.Exec;
                node.Filename = exec.Filename;
                node.Argv.Clear();
                node.Argv.AddRange(exec.Argv);
                var image = new ExecImage { Filename = exec.Filename, Time = time };
                image.Argv.AddRange(exec.Argv);
                node.Images.Add(image);
                node.Cwd = exec.Cwd;
                node.Uid = exec.Uid;
                if (node.ParentProcessKey.Length == 0) node.ParentProcessKey = exec.ParentProcessKey;
                Started(node, time);
                break;
            }
            case NodeEvent.DetailsOneofCase.Fork:
            {
                var fork = nodeEvent.Fork;
                var node = NodeFor(fork.ChildProcessKey, fork.ChildPid);
                // The fork names the real parent at creation; an exec's parent may already be a reaper.
                if (fork.ParentProcessKey.Length > 0) node.ParentProcessKey = fork.ParentProcessKey;
                Started(node, time);
                break;
            }
            case NodeEvent.DetailsOneofCase.Exit:
            {
                var node = NodeFor(nodeEvent.ProcessKey, nodeEvent.Pid);
                node.End = time;
                if (nodeEvent.Exit.HasExitCode) node.ExitCode = nodeEvent.Exit.ExitCode;
                if (nodeEvent.Exit.HasSignal) node.Signal = nodeEvent.Exit.Signal;
                break;
            }
            case NodeEvent.DetailsOneofCase.Connect:
            {
                var node = NodeFor(nodeEvent.ProcessKey, nodeEvent.Pid);
                if (node.Connects.Count < maxActivitiesPerProcess) node.Connects.Add(nodeEvent.Connect);
                break;
            }
            case NodeEvent.DetailsOneofCase.FileOpen:
            {
                var node = NodeFor(nodeEvent.ProcessKey, nodeEvent.Pid);
                if (node.Files.Count < maxActivitiesPerProcess) node.Files.Add(nodeEvent.FileOpen);
                break;
            }
        }
    }

    /// <summary>Makes sure a process named by the session (root, attribution) appears even without events.</summary>
    public void Ensure(string processKey)
    {
        if (!string.IsNullOrEmpty(processKey)) NodeFor(processKey, 0);
    }

    /// <summary>Pre-order walk from the root, then from every other process whose parent is not in the session; siblings by start.</summary>
    public List<ProcessNode> Build(string rootProcessKey)
    {
        var children = new Dictionary<string, List<ProcessNode>>(StringComparer.Ordinal);
        var roots = new List<ProcessNode>();
        foreach (var node in _nodes.Values)
        {
            if (node.ProcessKey != rootProcessKey && node.ParentProcessKey.Length > 0
                && node.ParentProcessKey != node.ProcessKey && _nodes.ContainsKey(node.ParentProcessKey))
            {
                if (!children.TryGetValue(node.ParentProcessKey, out var list))
                    children[node.ParentProcessKey] = list = [];
                list.Add(node);
            }
            else roots.Add(node);
        }
        Comparison<ProcessNode> byStart = (a, b) =>
        {
            int c = StartOf(a).CompareTo(StartOf(b));
            return c != 0 ? c : string.CompareOrdinal(a.ProcessKey, b.ProcessKey);
        };
        roots.Sort((a, b) => a.ProcessKey == rootProcessKey ? -1 : b.ProcessKey == rootProcessKey ? 1 : byStart(a, b));
        foreach (var list in children.Values) list.Sort(byStart);

        var ordered = new List<ProcessNode>(_nodes.Count);
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<ProcessNode>();
        foreach (var root in roots)
        {
            stack.Push(root);
            while (stack.Count > 0)
            {
                var node = stack.Pop();
                if (!visited.Add(node.ProcessKey)) continue;
                ordered.Add(node);
                if (children.TryGetValue(node.ProcessKey, out var list))
                    for (int i = list.Count - 1; i >= 0; i--) stack.Push(list[i]);
            }
        }
        // Parent links that form a cycle (hostile or corrupt input) leave nodes unvisited: append them, do not lose them.
        foreach (var node in _nodes.Values)
            if (visited.Add(node.ProcessKey)) ordered.Add(node);
        return ordered;
    }

    private long StartOf(ProcessNode node) => _startNs.GetValueOrDefault(node.ProcessKey, long.MaxValue);

    private void Started(ProcessNode node, Timestamp? time)
    {
        if (time is null) return;
        long ns = TimeConversion.ToUnixNanos(time);
        if (node.Start is null || ns < _startNs[node.ProcessKey])
        {
            node.Start = time;
            _startNs[node.ProcessKey] = ns;
        }
    }

    private ProcessNode NodeFor(string processKey, int pid)
    {
        if (!_nodes.TryGetValue(processKey, out var node))
            _nodes[processKey] = node = new ProcessNode { ProcessKey = processKey };
        if (node.Pid == 0 && pid != 0) node.Pid = pid;
        return node;
    }
}
