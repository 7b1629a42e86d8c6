#!/bin/bash -l
#BSUB -J sortie-pilot.0000
#BSUB -o /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.out
#BSUB -e /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.err
#BSUB -cwd /scratch/u/sortie.sandbox/session.0000/pilot.0000
#BSUB -W 1:30
#BSUB -nnodes 2
#BSUB -q pbatch
#BSUB -P ABC123

cd '/scratch/u/sortie.sandbox/session.0000/pilot.0000' || exit 1
# preBootstrap (resource config)
module load nodejs/20
exec node agent.cjs agent.json
