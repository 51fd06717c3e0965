using Xunit;

namespace P2PLocal.Rpc.Testing;

/// <summary>
/// A load of calls to any peer serving a contract while one of the serving nodes goes away (issue 14), and the check
/// that follows it: no call lost, none run twice unless idempotent. Shared by the in-process shutdown test and the
/// killed-process test.
/// </summary>
public static class FailoverLoad
{
    /// <summary>One job: the serving node's name that answered, or the error the caller got.</summary>
    public readonly record struct Outcome(int Job, string? Server, Exception? Error);

    /// <summary>
    /// Starts <paramref name="workers"/> tasks that each call <paramref name="call"/> for <paramref name="perWorker"/>
    /// jobs in turn (job ids 0 to workers × perWorker - 1); <paramref name="starting"/> sees each job id just before its call.
    /// </summary>
    public static async Task<Outcome[]> RunAsync(int workers, int perWorker, Func<int, Task<string>> call, Action<int>? starting = null)
    {
        var load = Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var outcomes = new List<Outcome>();
            for (var i = 0; i < perWorker; i++)
            {
                var job = (w * perWorker) + i;
                starting?.Invoke(job);
                try
                {
                    outcomes.Add(new Outcome(job, await call(job), null));
                }
                catch (Exception e)
                {
                    outcomes.Add(new Outcome(job, null, e));
                }
            }

            return outcomes;
        })).ToArray();
        return (await Task.WhenAll(load)).SelectMany(o => o).ToArray();
    }

    /// <summary>
    /// Asserts, from how often each job ran on the node that went away (<paramref name="onGone"/>, named
    /// <paramref name="goneName"/>) and on the one that stayed: every success ran where its answer came from, and twice at
    /// most when idempotent; every failure is a <see cref="PeerConnectionException"/> of a plain call that ran at most
    /// once; and at most <paramref name="workers"/> calls (those in flight) failed. Returns how many failed.
    /// </summary>
    public static int AssertNoneLostNoneRunTwice(Outcome[] results, int expected, string goneName,
        IReadOnlyDictionary<int, int> onGone, IReadOnlyDictionary<int, int> onStaying, bool idempotent, int workers)
    {
        Assert.Equal(expected, results.Length);
        foreach (var (job, server, error) in results)
        {
            var runs = onGone.GetValueOrDefault(job) + onStaying.GetValueOrDefault(job);
            if (error is null)
            {
                // Ran where the answer came from; only an idempotent call may also have run on the node that went away.
                Assert.Equal(1, (server == goneName ? onGone : onStaying).GetValueOrDefault(job));
                Assert.InRange(runs, 1, idempotent ? 2 : 1);
            }
            else
            {
                // Sent, then the connection closed before the answer: it may have run, so a plain call is not sent again.
                Assert.False(idempotent, $"idempotent job {job} failed: {error}");
                Assert.IsAssignableFrom<PeerConnectionException>(error);
                Assert.InRange(runs, 0, 1);
            }
        }

        var failed = results.Count(r => r.Error is not null);
        Assert.InRange(failed, 0, workers); // at most the calls in flight when the node went away
        return failed;
    }
}
