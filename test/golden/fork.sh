#!/bin/bash -l
# Started detached by Sortie (fork job manager); $$ is the session leader the launcher signals.
cd '/scratch/u/sortie.sandbox/session.0000/pilot.0000' || exit 1
echo $$ > agent.pid
# preBootstrap (resource config)
module load nodejs/20
timeout --foreground --kill-after=30 660 $HOME/node/bin/node agent.cjs agent.json
echo $? > agent.exit
