using P2PLocal.Rpc.Cli;
using P2PLocal.Rpc.Cli.Output;

// Ctrl+C cancels the token System.CommandLine passes to the running command (watch and listen then end cleanly).
return await CliApp.RunAsync(args, CliConsole.ForProcess());
